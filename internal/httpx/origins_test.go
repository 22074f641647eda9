package httpx

import "testing"

func TestOrigins(t *testing.T) {
	f := func(list []string, origin string, enabled, allows bool) {
		t.Helper()
		o := ParseOrigins(list)
		if o.Enabled() != enabled || o.Allows([]byte(origin)) != allows {
			t.Fatalf("ParseOrigins(%q): Enabled %v Allows(%q) %v; want %v %v", list, o.Enabled(), origin, o.Allows([]byte(origin)), enabled, allows)
		}
	}
	f(nil, "https://a.example", false, false)
	f([]string{"", " "}, "https://a.example", false, false)
	f([]string{"*"}, "https://anyone.example", true, true)
	f([]string{" https://Player.example/ "}, "https://player.EXAMPLE", true, true)
	f([]string{"https://player.example"}, "https://player.example.evil", true, false)
	f([]string{"https://player.example"}, "", true, false)
}

package scripts

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's and docs' request examples must work on the day they are run: an event with a fixed date is refused as too old a
// week later, and a fixed analytics window reads zeros. Dates belong only in examples of that refusal.
func TestExamplesCarryNoFixedDates(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../README.md")
	date := regexp.MustCompile(`(19|20)\d\d-\d\d-\d\d`)
	bodyDate := regexp.MustCompile(`"timestamp": *"\d{4}-`)
	request := regexp.MustCompile(`curl |^GET /|^POST /|"timestamp"|[?&](start|end|t)=`)
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		inBlock := false
		for i, l := range lines {
			if strings.HasPrefix(strings.TrimSpace(l), "```") {
				inBlock = !inBlock
				continue
			}
			if !inBlock && !bodyDate.MatchString(l) || !request.MatchString(l) {
				continue // outside code blocks only JSON bodies (the API tables) count
			}
			checked++
			next := ""
			if i+1 < len(lines) {
				next = lines[i+1]
			}
			if date.MatchString(l) && !strings.Contains(l+next, "too old") {
				t.Errorf("%s:%d: request example with a fixed date (refused or zeros after a week): %s", f, i+1, l)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d request examples found: the scan is broken", checked)
	}
}

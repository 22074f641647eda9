package catalog

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// disallowUnknown is what parseAdInput used to ask encoding/json for: the first unknown key, read back from the error text, which
// is fine as a test's reference but not as the service's contract.
func disallowUnknown(t *testing.T, body []byte) (string, bool) {
	var in adInput
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&in)
	const prefix = "json: unknown field "
	if err == nil || !strings.HasPrefix(err.Error(), prefix) {
		return "", false
	}
	name, uerr := strconv.Unquote(strings.TrimPrefix(err.Error(), prefix))
	if uerr != nil {
		t.Fatalf("%q: %v", err, uerr)
	}
	return name, true
}

// badKey finds the key encoding/json's DisallowUnknownFields would refuse, matching names as it does (case-insensitively).
func TestUnknownFieldMatchesEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`{"name":"n","target_url":"https://example.com/","colour":"red"}`,
		`{"NAME":"n","Target_URL":"https://example.com/"}`,
		`{"ſtatus":"active","duration_ſeconds":5}`, // U+017F folds to s
		`{"name":"x","a":1,"b":2}`,
		`{"name":{"nested":1},"version":[{"x":1}]}`,
		`{"name":"x","name":"y"}`,
		`{"":1}`,
		`{"a\"b":1}`,
		`{"id":1,"version":2,"created_at":"2020-01-01T00:00:00Z","updated_at":null,"image_url":"","video_url":"","status":"paused"}`,
		`{"colour":1} {}`,
		`{}`,
		`null`,
	} {
		wantName, wantOK := disallowUnknown(t, []byte(body))
		name, repeated, ok := badKey([]byte(body))
		if repeated { // a repeated known field is not an unknown one
			name, ok = "", false
		}
		if name != wantName || ok != wantOK {
			t.Errorf("%s: badKey = %q %v, encoding/json says %q %v", body, name, ok, wantName, wantOK)
		}
		_, perr := parseAdInput([]byte(body))
		if wantOK && (perr == nil || perr.Field != wantName) {
			t.Errorf("%s: parseAdInput = %+v, want the unknown field %q", body, perr, wantName)
		}
	}
}

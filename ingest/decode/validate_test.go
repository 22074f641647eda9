package decode

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseTimeStrictMatchesTimeParse(t *testing.T) {
	for _, s := range []string{"2025-04-21T15:00:00Z", "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
		"0000-01-01T00:00:00Z", "0000-03-01T00:00:00Z", "9999-12-31T23:59:59Z", "2000-02-29T12:00:00+01:00",
		"2024-02-29T23:59:59.999999999-23:59", "2025-04-21T15:00:00.1+00:00", "1900-03-01T00:00:00Z"} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseTime([]byte(s), false)
		if !ok || got != want.Unix() {
			t.Errorf("parseTime(%q) = %d %v, want %d", s, got, ok, want.Unix())
		}
	}
}

func TestParseTimeLenient(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got, ok := parseTime([]byte(in), true)
		if want == "" {
			if ok {
				t.Errorf("parseTime(%q, lenient) = %d, want failure", in, got)
			}
			return
		}
		if !ok || got != unix(want) {
			t.Errorf("parseTime(%q, lenient) = %d %v, want %s", in, got, ok, want)
		}
	}
	f("2016-01-17T8:15:07.127-05", "2016-01-17T13:15:07Z") // the VAST spec's own example
	f("2016-01-17T08:15:07.127-05:00", "2016-01-17T13:15:07Z")
	f("2016-01-17T08:15:07-0530", "2016-01-17T13:45:07Z")
	f("2016-01-17T08:15:07.127 05:00", "2016-01-17T03:15:07Z") // '+' decoded to ' ' by the query parser
	f("2016-01-17T08:15:07.127+05", "2016-01-17T03:15:07Z")
	f("2016-01-17T08:15:07", "2016-01-17T08:15:07Z")
	f("2016-01-17T08:15:07,5z", "2016-01-17T08:15:07Z")
	f("2016-01-17 08:15:07Z", "2016-01-17T08:15:07Z")
	f("2016-01-17t08:15:07Z", "2016-01-17T08:15:07Z")
	f("2016-01-17T8:15:07", "2016-01-17T08:15:07Z")
	f("2016-01-17T08:15:07.", "")
	f("2016-01-17T08:15", "")
	f("2016-01-17", "")
	f("2016-01-17T08:15:07+5", "")
	f("2016-01-17T08:15:07+05:0", "")
	f("2016-01-17T08:15:07+25", "")
	f("2016-01-17T08:15:07Zjunk", "")
	f("2016-01-17X08:15:07Z", "")
	f("2016-01-17T008:15:07Z", "")
	f("2016-1-17T08:15:07Z", "")
	f("2016-02-30T08:15:07Z", "")
	// Strict mode refuses every lenient extra.
	for _, s := range []string{"2016-01-17T8:15:07Z", "2016-01-17T08:15:07", "2016-01-17T08:15:07-05",
		"2016-01-17T08:15:07 05:00", "2016-01-17 08:15:07Z", "2016-01-17T08:15:07,5Z", "2016-01-17T08:15:07z"} {
		if v, ok := parseTime([]byte(s), false); ok {
			t.Errorf("parseTime(%q, strict) = %d, want failure", s, v)
		}
	}
}

func TestParseUnixTime(t *testing.T) {
	f := func(in string, want int64, wantOK bool) {
		t.Helper()
		got, ok := parseUnixTime([]byte(in))
		if ok != wantOK || got != want {
			t.Errorf("parseUnixTime(%q) = %d %v, want %d %v", in, got, ok, want, wantOK)
		}
	}
	f("1745247600", 1745247600, true)
	f("1745247600123", 1745247600, true)
	f("0", 0, true)
	f("99999999999", 99999999999, true)
	f("17452476001234", 0, false)
	f("", 0, false)
	f("-1", 0, false)
	f("1745247600.5", 0, false)
}

func TestSecondsToMs(t *testing.T) {
	f := func(in string, want uint64, wantSt numStatus) {
		t.Helper()
		got, st := secondsToMs([]byte(in))
		if st != wantSt || (st == numOK && got != want) {
			t.Errorf("secondsToMs(%q) = %d %d, want %d %d", in, got, st, want, wantSt)
		}
	}
	f("12", 12000, numOK)
	f("12.5", 12500, numOK)
	f("12.3456", 12346, numOK)
	f("12.3454", 12345, numOK)
	f("0.0005", 1, numOK)
	f("0.00049", 0, numOK)
	f("1.9995", 2000, numOK)
	f(".5", 500, numOK)
	f("5.", 5000, numOK)
	f("000012", 12000, numOK)
	f("1e3", 1000000, numOK)
	f("1E-3", 1, numOK)
	f("25e-4", 3, numOK)
	f("1.23e+1", 12300, numOK)
	f("0e1000000", 0, numOK)
	f("1e1000000", 0, numTooLarge)
	f("1e-1000000", 0, numOK)
	f("-0", 0, numOK)
	f("-0.000", 0, numOK)
	f("-1", 0, numNegative)
	f("-1e-9", 0, numNegative)
	f(strings.Repeat("9", 40), 0, numTooLarge)
	f("1125899906843", 0, numTooLarge)
	f("", 0, numBad)
	f(".", 0, numBad)
	f("1.2.3", 0, numBad)
	f("1e", 0, numBad)
	f("1x", 0, numBad)
	f("e5", 0, numBad)
}

func TestParsePlayhead(t *testing.T) {
	f := func(in string, want uint64, wantOK bool) {
		t.Helper()
		got, ok := parsePlayhead([]byte(in))
		if ok != wantOK || (ok && got != want) {
			t.Errorf("parsePlayhead(%q) = %d %v, want %d %v", in, got, ok, want, wantOK)
		}
	}
	f("00:00:12.500", 12500, true)
	f("00:00:12", 12000, true)
	f("01:02:03.004", 3723004, true)
	f("1:02:03.4", 3723400, true)
	f("00:00:00.04", 40, true)
	f("00:00:12.3456", 12346, true)
	f("00:00:12.9999", 13000, true)
	f("100:00:00", 360000000, true)
	f("00:60:00", 0, false)
	f("00:00:60", 0, false)
	f("00:0:12", 0, false)
	f("00:00:12.", 0, false)
	f("00:00:12.5x", 0, false)
	f("00:00:12,5", 0, false)
	f(":00:12", 0, false)
	f("123456:00:00", 0, false)
	f("12.5", 0, false)
}

func TestParseAdID(t *testing.T) {
	f := func(in string, want uint64, wantSt adIDStatus) {
		t.Helper()
		got, st := parseAdID([]byte(in))
		if st != wantSt || got != want {
			t.Errorf("parseAdID(%q) = %d %d, want %d %d", in, got, st, want, wantSt)
		}
	}
	f("1", 1, adIDOK)
	f("9223372036854775807", math.MaxInt64, adIDOK)
	f("9223372036854775808", 0, adIDTooLarge)
	f("99999999999999999999", 0, adIDTooLarge)
	f("99999999999999999999x", 0, adIDBad)
	f("0", 0, adIDBad)
	f("01", 0, adIDBad)
	f("", 0, adIDBad)
	f("-1", 0, adIDBad)
	f("+1", 0, adIDBad)
	f("1.0", 0, adIDBad)
}

func TestDaysFromCivil(t *testing.T) {
	// Every day boundary over four centuries either side of the epoch, against package time.
	for d := time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2400; d = d.AddDate(0, 0, 1) {
		if got := daysFromCivil(d.Year(), int(d.Month()), d.Day()) * 86400; got != d.Unix() {
			t.Fatalf("daysFromCivil(%s) * 86400 = %d, want %d", d.Format(time.DateOnly), got, d.Unix())
		}
		if d.Day() == 1 {
			last := d.AddDate(0, 1, -1).Day()
			if daysIn(int(d.Month()), d.Year()) != last {
				t.Fatalf("daysIn(%d, %d) = %d, want %d", d.Month(), d.Year(), daysIn(int(d.Month()), d.Year()), last)
			}
		}
	}
}

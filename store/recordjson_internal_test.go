package store

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// FuzzRecordJSON checks that a record's MarshalJSON writes field values
// byte for byte as json.Marshal does, whatever the string: the plain
// ASCII ones it writes itself, the rest through json.Marshal.
func FuzzRecordJSON(f *testing.F) {
	for _, s := range []string{"", "Acme", "sales@example.com", "https://example.com/a?b=c", `quote " here`, `back\slash`,
		"<b>&amp;</b>", "a < b", "a > b", "a & b", "del \x7f", "tab\tnew\nline\r", "\x00\x1f\x7f", "Zoë Ünïcødé 株式会社 🚀", "\u2028\u2029", "\xff\xfe bad utf-8",
		"~ ` ! @ # $ % ^ * ( ) _ + = { } [ ] | : ; ' , . / ?"} {
		f.Add(s, 1.5)
	}
	f.Add("x", 1e21)
	f.Add("x", 1e-7)
	f.Add("x", -0.0)
	f.Add("x", 123456789.0)
	f.Fuzz(func(t *testing.T, s string, n float64) {
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return
		}
		at := time.Date(2025, 1, 15, 10, 0, 0, 123_000_000, time.FixedZone("CET", 3600))
		rec := Record{Resource: Deals, ID: s, Fields: map[string]any{"name": s, "value": n}, CreatedAt: at, UpdatedAt: at,
			CreatedVia: s, APIKeyID: s}
		got, err := rec.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		str := func(v any) string {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
		want := `{"id":` + str(s)
		for _, fl := range Deals.Fields {
			want += `,"` + fl.Name + `":` + str(rec.Fields[fl.Name])
		}
		want += `,"created_at":"2025-01-15T09:00:00.123Z","updated_at":"2025-01-15T09:00:00.123Z","created_via":` + str(s) +
			`,"api_key_id":` + str(s) + `}`
		if string(got) != want {
			t.Errorf("MarshalJSON =\n\t%s\nwant\n\t%s", got, want)
		}

		del := at.Add(time.Hour)
		rec.DeletedAt = &del
		rec.Fields[ExternalIDField] = s
		got, err = rec.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		want = `{"id":` + str(s) + `,"deleted":true,"deleted_at":"2025-01-15T10:00:00.123Z","external_id":` + str(s) +
			`,"created_at":"2025-01-15T09:00:00.123Z","updated_at":"2025-01-15T09:00:00.123Z"}`
		if string(got) != want {
			t.Errorf("MarshalJSON of a tombstone =\n\t%s\nwant\n\t%s", got, want)
		}
	})
}

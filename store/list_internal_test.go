package store

import (
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCursorRoundTrip(t *testing.T) {
	rec := &Record{ID: "0198c0de-1234-7abc-8def-0123456789ab",
		CreatedAt: time.Date(2025, 1, 15, 10, 0, 0, 123_000_000, time.UTC),
		UpdatedAt: time.Date(2025, 2, 1, 8, 30, 0, 7_000_000, time.UTC)}
	for _, c := range []struct {
		sort string
		asc  bool
		name string
		at   time.Time
	}{
		{SortCreatedAt, false, "-created_at", rec.CreatedAt},
		{SortCreatedAt, true, "created_at", rec.CreatedAt},
		{SortUpdatedAt, false, "-updated_at", rec.UpdatedAt},
		{SortUpdatedAt, true, "updated_at", rec.UpdatedAt},
	} {
		s := encodeCursor(RecordQuery{Sort: c.sort, Ascending: c.asc}, rec)
		if strings.ContainsAny(s, "+/=") {
			t.Errorf("cursor %q is not URL-safe", s)
		}
		got, err := decodeCursor(s)
		if err != nil {
			t.Fatalf("decodeCursor(%q): %v", s, err)
		}
		if got.Sort != c.name || got.ID != rec.ID || got.Time != c.at.UnixMilli() {
			t.Errorf("%s: decoded %+v", c.name, got)
		}
		// A cursor alone says where and in which order to go on.
		q, _, err := ListParams{Limit: 10, Cursor: s}.recordQuery(Accounts)
		if err != nil {
			t.Fatalf("recordQuery with cursor: %v", err)
		}
		if q.Sort != c.sort || q.Ascending != c.asc || q.After == nil || q.After.ID != rec.ID || !q.After.Time.Equal(c.at) ||
			q.After.Time.Location() != time.UTC {
			t.Errorf("%s: query %+v, after %+v", c.name, q, q.After)
		}
		// The same sort given again is accepted; another is not.
		if _, _, err := (ListParams{Limit: 10, Cursor: s, Sort: c.name}).recordQuery(Accounts); err != nil {
			t.Errorf("%s: cursor with its own sort: %v", c.name, err)
		}
		for _, other := range SortOrders {
			if other == c.name {
				continue
			}
			_, _, err := ListParams{Limit: 10, Cursor: s, Sort: other}.recordQuery(Accounts)
			wantFieldErr(t, err, "sort", c.name+" cursor with sort "+other)
		}
		_, _, err = ListParams{Limit: 10, Cursor: s, Offset: 5}.recordQuery(Accounts)
		wantFieldErr(t, err, "offset", "cursor with an offset")
	}
}

func TestCursorRefused(t *testing.T) {
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	id := "0198c0de-1234-7abc-8def-0123456789ab"
	good := enc(map[string]any{"s": "-created_at", "t": 1736935200123, "i": id})
	if _, err := decodeCursor(good); err != nil {
		t.Fatalf("a well-formed cursor is refused: %v", err)
	}
	bad := map[string]string{
		"empty JSON":               enc(map[string]any{}),
		"not base64":               "not a cursor!",
		"standard base64 padding":  base64.StdEncoding.EncodeToString([]byte(`{"s":"-created_at","t":1,"i":"` + id + `"}`)),
		"not JSON":                 base64.RawURLEncoding.EncodeToString([]byte("hello")),
		"JSON array":               enc([]any{"-created_at", 1, id}),
		"unknown sort":             enc(map[string]any{"s": "name", "t": 1, "i": id}),
		"sort with operator":       enc(map[string]any{"s": map[string]any{"$ne": ""}, "t": 1, "i": id}),
		"sort by id":               enc(map[string]any{"s": "-id", "t": 1, "i": id}),
		"no id":                    enc(map[string]any{"s": "-created_at", "t": 1}),
		"id not an id":             enc(map[string]any{"s": "-created_at", "t": 1, "i": "x' OR 1=1 --"}),
		"id an operator":           enc(map[string]any{"s": "-created_at", "t": 1, "i": map[string]any{"$gt": ""}}),
		"time zero":                enc(map[string]any{"s": "-created_at", "t": 0, "i": id}),
		"time negative":            enc(map[string]any{"s": "-created_at", "t": -5, "i": id}),
		"time a string":            enc(map[string]any{"s": "-created_at", "t": "2025-01-01", "i": id}),
		"time a fraction":          enc(map[string]any{"s": "-created_at", "t": 1.5, "i": id}),
		"too long":                 enc(map[string]any{"s": "-created_at", "t": 1, "i": id, "x": strings.Repeat("x", 600)}),
		"trailing data":            base64.RawURLEncoding.EncodeToString([]byte(`{"s":"-created_at","t":1,"i":"` + id + `"}x`)),
		"good cursor with garbage": good + "!",
		"truncated":                good[:len(good)-4],
	}
	for name, s := range bad {
		_, err := decodeCursor(s)
		wantFieldErr(t, err, "cursor", name)
		_, _, err = ListParams{Limit: 10, Cursor: s}.recordQuery(Accounts)
		wantFieldErr(t, err, "cursor", name+" through recordQuery")
	}
	// Tampering with a byte of a real cursor never yields an error other
	// than bad_request about the cursor, and never a panic.
	rec := &Record{ID: id, CreatedAt: time.UnixMilli(1736935200123)}
	c := encodeCursor(RecordQuery{Sort: SortCreatedAt}, rec)
	for i := range c {
		for _, ch := range []byte{'A', '_', '-', 'z', '0'} {
			tampered := c[:i] + string(ch) + c[i+1:]
			if _, err := decodeCursor(tampered); err != nil {
				wantFieldErr(t, err, "cursor", "tampered cursor "+tampered)
			}
		}
	}
}

func wantFieldErr(t *testing.T, err error, field, what string) {
	t.Helper()
	e, ok := err.(*Error)
	if !ok || e.Code != EBADREQUEST || e.Field != field {
		t.Errorf("%s: %v, want bad_request about %s", what, err, field)
	}
}

func TestListParams(t *testing.T) {
	const someID = "0198c0de-1234-7abc-8def-0123456789ab"
	after := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	before := after.Add(time.Hour)
	good := []struct {
		name string
		r    *Resource
		lp   ListParams
		want RecordQuery
	}{
		{"defaults", Accounts, ListParams{Limit: 10}, RecordQuery{Limit: 11, Sort: SortCreatedAt}},
		{"limit capped", Accounts, ListParams{Limit: 5000, Offset: 3}, RecordQuery{Limit: MaxLimit + 1, Offset: 3, Sort: SortCreatedAt}},
		{"-created_at", Accounts, ListParams{Limit: 1, Sort: "-created_at"}, RecordQuery{Limit: 2, Sort: SortCreatedAt}},
		{"created_at", Accounts, ListParams{Limit: 1, Sort: "created_at"}, RecordQuery{Limit: 2, Sort: SortCreatedAt, Ascending: true}},
		{"-updated_at", Accounts, ListParams{Limit: 1, Sort: "-updated_at"}, RecordQuery{Limit: 2, Sort: SortUpdatedAt}},
		{"updated_at", Accounts, ListParams{Limit: 1, Sort: "updated_at"}, RecordQuery{Limit: 2, Sort: SortUpdatedAt, Ascending: true}},
		{"time bounds", Accounts, ListParams{Limit: 1, CreatedAfter: after, CreatedBefore: before, UpdatedAfter: after, UpdatedBefore: before},
			RecordQuery{Limit: 2, Sort: SortCreatedAt, CreatedAfter: after, CreatedBefore: before, UpdatedAfter: after, UpdatedBefore: before}},
		{"one-sided bounds", Accounts, ListParams{Limit: 1, CreatedBefore: after, UpdatedAfter: before},
			RecordQuery{Limit: 2, Sort: SortCreatedAt, CreatedBefore: after, UpdatedAfter: before}},
		{"filters normalized, in name order", Deals, ListParams{Limit: 1, Filters: map[string]string{"stage": " Won ", "currency": "eur", "account_id": someID}},
			RecordQuery{Limit: 2, Sort: SortCreatedAt, Filters: []FieldFilter{{"account_id", someID}, {"currency", "EUR"}, {"stage", "Won"}}}},
		{"enum filter", Activities, ListParams{Limit: 1, Filters: map[string]string{"type": "call"}},
			RecordQuery{Limit: 2, Sort: SortCreatedAt, Filters: []FieldFilter{{"type", "Call"}}}},
		{"operator text is a value", Accounts, ListParams{Limit: 1, Filters: map[string]string{"industry": `{"$gt":""}`}},
			RecordQuery{Limit: 2, Sort: SortCreatedAt, Filters: []FieldFilter{{"industry", `{"$gt":""}`}}}},
		{"q trimmed", Accounts, ListParams{Limit: 1, Q: "  acme % _ .*  "}, RecordQuery{Limit: 2, Sort: SortCreatedAt, Search: "acme % _ .*"}},
		{"q blank", Accounts, ListParams{Limit: 1, Q: "   "}, RecordQuery{Limit: 2, Sort: SortCreatedAt}},
		{"q of 200 characters", Accounts, ListParams{Limit: 1, Q: strings.Repeat("é", 200)},
			RecordQuery{Limit: 2, Sort: SortCreatedAt, Search: strings.Repeat("é", 200)}},
		{"include deleted", Notes, ListParams{Limit: 1, IncludeDeleted: true}, RecordQuery{Limit: 2, Sort: SortCreatedAt, IncludeDeleted: true}},
	}
	for _, c := range good {
		q, lp, err := c.lp.recordQuery(c.r)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !reflect.DeepEqual(q, c.want) {
			t.Errorf("%s: query\n\t%+v\nwant\n\t%+v", c.name, q, c.want)
		}
		if lp.Limit != min(c.lp.Limit, MaxLimit) {
			t.Errorf("%s: page limit %d", c.name, lp.Limit)
		}
	}

	bad := []struct {
		name  string
		r     *Resource
		lp    ListParams
		field string
	}{
		{"no limit", Accounts, ListParams{}, "limit"},
		{"negative limit", Accounts, ListParams{Limit: -1}, "limit"},
		{"negative offset", Accounts, ListParams{Limit: 1, Offset: -1}, "offset"},
		{"unknown sort", Accounts, ListParams{Limit: 1, Sort: "name"}, "sort"},
		{"sort with spaces", Accounts, ListParams{Limit: 1, Sort: " created_at"}, "sort"},
		{"two sorts", Accounts, ListParams{Limit: 1, Sort: "created_at,-updated_at"}, "sort"},
		{"unknown filter", Accounts, ListParams{Limit: 1, Filters: map[string]string{"colour": "red"}}, "colour"},
		{"first unknown filter named", Accounts, ListParams{Limit: 1, Filters: map[string]string{"zeta": "1", "alpha": "2"}}, "alpha"},
		{"not filterable", Accounts, ListParams{Limit: 1, Filters: map[string]string{"website": "x"}}, "website"},
		{"field of another resource", Accounts, ListParams{Limit: 1, Filters: map[string]string{"stage": "Won"}}, "stage"},
		{"operator as filter", Accounts, ListParams{Limit: 1, Filters: map[string]string{"$where": "1"}}, "$where"},
		{"empty filter value", Accounts, ListParams{Limit: 1, Filters: map[string]string{"industry": " "}}, "industry"},
		{"bad reference", Deals, ListParams{Limit: 1, Filters: map[string]string{"account_id": "1"}}, "account_id"},
		{"bad currency", Deals, ListParams{Limit: 1, Filters: map[string]string{"currency": "euro"}}, "currency"},
		{"bad enum", Activities, ListParams{Limit: 1, Filters: map[string]string{"type": "Lunch"}}, "type"},
		{"bad email", Contacts, ListParams{Limit: 1, Filters: map[string]string{"email": "x"}}, "email"},
		{"q too long", Accounts, ListParams{Limit: 1, Q: strings.Repeat("é", 201)}, "q"},
		{"q with NUL", Accounts, ListParams{Limit: 1, Q: "a\x00"}, "q"},
		{"created bounds equal", Accounts, ListParams{Limit: 1, CreatedAfter: after, CreatedBefore: after}, "created_after"},
		{"created bounds reversed", Accounts, ListParams{Limit: 1, CreatedAfter: before, CreatedBefore: after}, "created_after"},
		{"updated bounds reversed", Accounts, ListParams{Limit: 1, UpdatedAfter: before, UpdatedBefore: after}, "updated_after"},
	}
	for _, c := range bad {
		_, _, err := c.lp.recordQuery(c.r)
		wantFieldErr(t, err, c.field, c.name)
		if e, ok := err.(*Error); ok && !strings.Contains(e.Message, c.field) {
			t.Errorf("%s: message %q does not name %s", c.name, e.Message, c.field)
		}
	}
	_, _, err := ListParams{Limit: 1, Filters: map[string]string{"colour": "red"}}.recordQuery(Deals)
	if e, ok := err.(*Error); !ok || !strings.Contains(e.Message, strings.Join(Deals.FilterNames(), ", ")) {
		t.Errorf("unknown filter: %v, want the known filters listed", err)
	}
}

func TestFilterNames(t *testing.T) {
	want := map[string][]string{
		"accounts":   {"industry", "email", "country", "external_id"},
		"contacts":   {"email", "account_id", "external_id"},
		"leads":      {"email", "status", "source", "external_id"},
		"deals":      {"currency", "stage", "account_id", "external_id"},
		"activities": {"type", "related_account_id", "related_contact_id", "related_opportunity_id", "related_lead_id", "external_id"},
		"notes":      {"related_account_id", "related_contact_id", "related_opportunity_id", "related_lead_id", "external_id"},
	}
	for _, r := range Resources {
		if got := r.FilterNames(); !reflect.DeepEqual(got, want[r.Name]) {
			t.Errorf("%s filters = %q, want %q", r.Name, got, want[r.Name])
		}
		if len(r.SearchFields) == 0 {
			t.Errorf("%s has no search fields", r.Name)
		}
		for _, name := range r.SearchFields {
			if f, ok := r.Field(name); !ok || f.Type != FieldString {
				t.Errorf("%s searches %q, which is not one of its text fields", r.Name, name)
			}
		}
	}
}

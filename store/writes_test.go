package store_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

func TestValidatePatch(t *testing.T) {
	cases := []struct {
		name  string
		r     *store.Resource
		in    map[string]any
		set   map[string]any
		clear []string
		field string // the field the error names; "-" for an error without one
	}{
		{"empty patch", store.Accounts, map[string]any{}, map[string]any{}, nil, ""},
		{"set trimmed", store.Accounts, map[string]any{"name": "  New name "}, map[string]any{"name": "New name"}, nil, ""},
		{"null clears", store.Accounts, map[string]any{"industry": nil}, map[string]any{}, []string{"industry"}, ""},
		{"empty string clears", store.Accounts, map[string]any{"website": "", "phone": "  "}, map[string]any{}, []string{"website", "phone"}, ""},
		{"set and clear in schema order", store.Accounts, map[string]any{"country": "DE", "industry": nil, "external_id": nil, "name": "N"},
			map[string]any{"name": "N", "country": "DE"}, []string{"industry", "external_id"}, ""},
		{"server and tenant fields ignored", store.Accounts, map[string]any{"id": store.NewID(), "created_at": "x", "updated_at": 1.0,
			"created_via": "cli", "api_key_id": "k", "workspace_id": "w", "company_id": "c"}, map[string]any{}, nil, ""},
		{"normalized like create", store.Deals, map[string]any{"currency": "eur", "value": json.Number("12.5")},
			map[string]any{"currency": "EUR", "value": 12.5}, nil, ""},
		{"enum in any case", store.Activities, map[string]any{"type": "meeting"}, map[string]any{"type": "Meeting"}, nil, ""},
		{"date to UTC", store.Activities, map[string]any{"due_date": "2025-06-30T12:00:00+02:00"}, map[string]any{"due_date": "2025-06-30T10:00:00Z"}, nil, ""},
		{"reference", store.Deals, map[string]any{"account_id": someID}, map[string]any{"account_id": someID}, nil, ""},
		{"one-of fields may be cleared alone", store.Contacts, map[string]any{"first_name": nil}, map[string]any{}, []string{"first_name"}, ""},
		{"external id", store.Leads, map[string]any{"external_id": " crm-1 "}, map[string]any{"external_id": "crm-1"}, nil, ""},

		{"nil body", store.Accounts, nil, nil, nil, "-"},
		{"required cleared by null", store.Accounts, map[string]any{"name": nil}, nil, nil, "name"},
		{"required cleared by blank", store.Notes, map[string]any{"content": " \n "}, nil, nil, "content"},
		{"enum cleared", store.Activities, map[string]any{"type": nil}, nil, nil, "type"},
		{"unknown field", store.Accounts, map[string]any{"name": "A", "nickname": "x"}, nil, nil, "nickname"},
		{"operator as field", store.Accounts, map[string]any{"$set": map[string]any{"name": "x"}}, nil, nil, "$set"},
		{"wrong type", store.Accounts, map[string]any{"name": 1.0}, nil, nil, "name"},
		{"object value", store.Accounts, map[string]any{"industry": map[string]any{"$gt": ""}}, nil, nil, "industry"},
		{"negative number", store.Deals, map[string]any{"value": -1.0}, nil, nil, "value"},
		{"bad currency", store.Deals, map[string]any{"currency": "EURO"}, nil, nil, "currency"},
		{"bad enum", store.Activities, map[string]any{"type": "Lunch"}, nil, nil, "type"},
		{"bad reference", store.Deals, map[string]any{"account_id": "42"}, nil, nil, "account_id"},
		{"bad email", store.Leads, map[string]any{"email": "nope"}, nil, nil, "email"},
		{"too long", store.Leads, map[string]any{"external_id": strings.Repeat("x", 256)}, nil, nil, "external_id"},
		{"NUL", store.Leads, map[string]any{"name": "a\x00b"}, nil, nil, "name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set, clear, err := c.r.ValidatePatch(c.in)
			if c.field != "" {
				var e *store.Error
				if !errors.As(err, &e) || e.Code != store.EBADREQUEST {
					t.Fatalf("err = %v, want bad_request", err)
				}
				if c.field != "-" && (e.Field != c.field || !strings.HasPrefix(e.Message, c.field) && !strings.Contains(e.Message, `"`+c.field+`"`)) {
					t.Errorf("error %+v does not name field %q", e, c.field)
				}
				if set != nil || clear != nil {
					t.Errorf("with an error: set %v, clear %v", set, clear)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !reflect.DeepEqual(set, c.set) {
				t.Errorf("set = %#v, want %#v", set, c.set)
			}
			if !reflect.DeepEqual(clear, c.clear) {
				t.Errorf("clear = %q, want %q", clear, c.clear)
			}
		})
	}
}

func TestValidIdempotencyKey(t *testing.T) {
	cases := []struct {
		key  string
		want bool
	}{
		{"a", true},
		{"order-42/retry 1", true},
		{" ", true},
		{"~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", true},
		{strings.Repeat("k", 255), true},
		{"", false},
		{strings.Repeat("k", 256), false},
		{"a\nb", false},
		{"tab\t", false},
		{"\x1f", false},
		{"\x7f", false},
		{"\x00", false},
		{"clé", false},
		{"ключ", false},
		{"\xff", false},
	}
	for _, c := range cases {
		if got := store.ValidIdempotencyKey(c.key); got != c.want {
			t.Errorf("ValidIdempotencyKey(%q) = %v, want %v", c.key, got, c.want)
		}
	}
}

func TestTombstoneJSON(t *testing.T) {
	created := time.Date(2025, 1, 15, 10, 0, 0, 123_000_000, time.UTC)
	deleted := created.Add(time.Hour).In(time.FixedZone("CEST", 2*3600))
	rec := store.Record{
		Resource:    store.Deals,
		ID:          someID,
		WorkspaceID: "0198c0de-0000-7000-8000-000000000000",
		Fields:      map[string]any{"name": "Secret deal", "value": 99.0, "currency": "EUR", "external_id": "crm-9"},
		CreatedAt:   created,
		UpdatedAt:   deleted,
		CreatedVia:  store.CreatedViaAPI,
		APIKeyID:    "0198c0de-ffff-7000-8000-000000000000",
		DeletedAt:   &deleted,
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"0198c0de-1234-7abc-8def-0123456789ab","deleted":true,"deleted_at":"2025-01-15T11:00:00.123Z",` +
		`"external_id":"crm-9","created_at":"2025-01-15T10:00:00.123Z","updated_at":"2025-01-15T11:00:00.123Z"}`
	if string(b) != want {
		t.Errorf("json.Marshal(tombstone) =\n\t%s\nwant\n\t%s", b, want)
	}
	for _, hidden := range []string{"Secret", "99", "EUR", rec.WorkspaceID, rec.APIKeyID} {
		if strings.Contains(string(b), hidden) {
			t.Errorf("tombstone JSON shows %q", hidden)
		}
	}

	// Without an external id, the key is there with null.
	rec.Fields = map[string]any{"name": "x"}
	b, err = json.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"external_id":null`) || !strings.Contains(string(b), `"deleted":true`) {
		t.Errorf("json.Marshal(&tombstone without external id) = %s", b)
	}

	back := store.Record{Resource: store.Deals}
	if err := json.Unmarshal([]byte(want), &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != someID || back.DeletedAt == nil || !back.DeletedAt.Equal(deleted) || !back.UpdatedAt.Equal(deleted) ||
		!back.CreatedAt.Equal(created) || !reflect.DeepEqual(back.Fields, map[string]any{"external_id": "crm-9"}) {
		t.Errorf("round trip = %+v (deleted_at %v)", back, back.DeletedAt)
	}
	var live store.Record
	if err := json.Unmarshal([]byte(`{"id":"x","name":"A"}`), &live); err != nil || live.DeletedAt != nil {
		t.Errorf("a live record reads with deleted_at %v (%v)", live.DeletedAt, err)
	}
	if err := json.Unmarshal([]byte(`{"id":"x","deleted_at":"yesterday"}`), &live); err == nil {
		t.Error("a bad deleted_at was accepted")
	}
}

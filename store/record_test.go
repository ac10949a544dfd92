package store_test

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

const someID = "0198c0de-1234-7abc-8def-0123456789ab"

func TestValidateCreate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) }
	cases := []struct {
		name  string
		r     *store.Resource
		in    map[string]any
		want  map[string]any // nil when an error is expected
		field string         // the field the error names
		msg   string         // a part of the error message
	}{
		// Accepted input, normalized.
		{"minimal account", store.Accounts, map[string]any{"name": "Acme"}, map[string]any{"name": "Acme"}, "", ""},
		{"strings trimmed", store.Accounts, map[string]any{"name": "  Acme \n", "industry": "\tSoftware "},
			map[string]any{"name": "Acme", "industry": "Software"}, "", ""},
		{"empty and null optional fields dropped", store.Accounts, map[string]any{"name": "Acme", "industry": "   ", "website": nil, "phone": ""},
			map[string]any{"name": "Acme"}, "", ""},
		{"unicode at the length limit", store.Accounts, map[string]any{"name": long(255)}, map[string]any{"name": long(255)}, "", ""},
		{"ignored server and tenant fields", store.Accounts, map[string]any{
			"name": "Acme", "id": "x", "created_at": 1, "updated_at": true, "created_via": "cli", "api_key_id": "k",
			"workspace_id": someID, "company_id": map[string]any{"$gt": ""},
		}, map[string]any{"name": "Acme"}, "", ""},
		{"operator text is plain text", store.Accounts, map[string]any{"name": `{"$gt":""}`, "industry": "$where", "country": "'; DROP TABLE accounts; --"},
			map[string]any{"name": `{"$gt":""}`, "industry": "$where", "country": "'; DROP TABLE accounts; --"}, "", ""},
		{"email", store.Leads, map[string]any{"name": "L", "email": "ops@example.com"}, map[string]any{"name": "L", "email": "ops@example.com"}, "", ""},
		{"number zero", store.Deals, map[string]any{"name": "D", "value": 0.0}, map[string]any{"name": "D", "value": 0.0, "currency": "USD"}, "", ""},
		{"number fraction", store.Deals, map[string]any{"name": "D", "value": 1234.56}, map[string]any{"name": "D", "value": 1234.56, "currency": "USD"}, "", ""},
		{"json.Number", store.Deals, map[string]any{"name": "D", "value": json.Number("12.5")}, map[string]any{"name": "D", "value": 12.5, "currency": "USD"}, "", ""},
		{"currency upper-cased", store.Deals, map[string]any{"name": "D", "currency": "eur"}, map[string]any{"name": "D", "currency": "EUR"}, "", ""},
		{"currency default on null", store.Deals, map[string]any{"name": "D", "currency": nil}, map[string]any{"name": "D", "currency": "USD"}, "", ""},
		{"currency default on blank", store.Deals, map[string]any{"name": "D", "currency": "  "}, map[string]any{"name": "D", "currency": "USD"}, "", ""},
		{"reference", store.Deals, map[string]any{"name": "D", "account_id": someID}, map[string]any{"name": "D", "currency": "USD", "account_id": someID}, "", ""},
		{"date", store.Activities, map[string]any{"type": "Call", "title": "T", "due_date": "2025-06-30"},
			map[string]any{"type": "Call", "title": "T", "due_date": "2025-06-30"}, "", ""},
		{"leap day", store.Activities, map[string]any{"type": "Call", "title": "T", "due_date": "2024-02-29"},
			map[string]any{"type": "Call", "title": "T", "due_date": "2024-02-29"}, "", ""},
		{"timestamp to UTC", store.Activities, map[string]any{"type": "Call", "title": "T", "due_date": "2025-06-30T12:00:00+02:00"},
			map[string]any{"type": "Call", "title": "T", "due_date": "2025-06-30T10:00:00Z"}, "", ""},
		{"timestamp with fraction", store.Activities, map[string]any{"type": "Call", "title": "T", "due_date": "2025-06-30T12:00:00.250Z"},
			map[string]any{"type": "Call", "title": "T", "due_date": "2025-06-30T12:00:00.25Z"}, "", ""},
		{"enum in any case", store.Activities, map[string]any{"type": "mEeTiNg", "title": "T"}, map[string]any{"type": "Meeting", "title": "T"}, "", ""},
		{"enum lower case", store.Activities, map[string]any{"type": "task", "title": "T"}, map[string]any{"type": "Task", "title": "T"}, "", ""},
		{"contact with first name", store.Contacts, map[string]any{"first_name": "Ada"}, map[string]any{"first_name": "Ada"}, "", ""},
		{"contact with last name", store.Contacts, map[string]any{"last_name": "Lovelace"}, map[string]any{"last_name": "Lovelace"}, "", ""},
		{"note", store.Notes, map[string]any{"content": "text", "related_lead_id": someID}, map[string]any{"content": "text", "related_lead_id": someID}, "", ""},

		// Refused input.
		{"nil body", store.Accounts, nil, nil, "", "JSON object"},
		{"unknown fields named", store.Accounts, map[string]any{"name": "A", "zeta": 1, "alpha": 2}, nil, "alpha", `"alpha", "zeta"`},
		{"operator as field name", store.Accounts, map[string]any{"name": "A", "$where": "sleep(1)"}, nil, "$where", `"$where"`},
		{"required missing", store.Accounts, map[string]any{"industry": "x"}, nil, "name", "is required"},
		{"required null", store.Accounts, map[string]any{"name": nil}, nil, "name", "is required"},
		{"required blank", store.Accounts, map[string]any{"name": " \t "}, nil, "name", "is required"},
		{"string as number", store.Accounts, map[string]any{"name": 12.0}, nil, "name", "got a number"},
		{"string as boolean", store.Accounts, map[string]any{"name": true}, nil, "name", "got a boolean"},
		{"string as array", store.Accounts, map[string]any{"name": []any{"a"}}, nil, "name", "got an array"},
		{"string as object", store.Accounts, map[string]any{"name": map[string]any{"$gt": ""}}, nil, "name", "got an object"},
		{"too long", store.Accounts, map[string]any{"name": long(256)}, nil, "name", "at most 255"},
		{"phone too long", store.Accounts, map[string]any{"name": "A", "phone": strings.Repeat("1", 65)}, nil, "phone", "at most 64"},
		{"NUL", store.Accounts, map[string]any{"name": "a\x00b"}, nil, "name", "NUL"},
		{"invalid UTF-8", store.Accounts, map[string]any{"name": "a\xffb"}, nil, "name", "UTF-8"},
		{"bad email", store.Accounts, map[string]any{"name": "A", "email": "not-an-email"}, nil, "email", "email"},
		{"email with display name", store.Accounts, map[string]any{"name": "A", "email": "Ops <ops@example.com>"}, nil, "email", "email"},
		{"number as string", store.Deals, map[string]any{"name": "D", "value": "12"}, nil, "value", "got a string"},
		{"number as object", store.Deals, map[string]any{"name": "D", "value": map[string]any{"$gt": 0}}, nil, "value", "got an object"},
		{"negative number", store.Deals, map[string]any{"name": "D", "value": -0.01}, nil, "value", ">= 0"},
		{"NaN", store.Deals, map[string]any{"name": "D", "value": math.NaN()}, nil, "value", ">= 0"},
		{"infinity", store.Deals, map[string]any{"name": "D", "value": math.Inf(1)}, nil, "value", ">= 0"},
		{"bad json.Number", store.Deals, map[string]any{"name": "D", "value": json.Number("1e999")}, nil, "value", "number"},
		{"currency too long", store.Deals, map[string]any{"name": "D", "currency": "EURO"}, nil, "currency", "ISO 4217"},
		{"currency with digit", store.Deals, map[string]any{"name": "D", "currency": "E1R"}, nil, "currency", "ISO 4217"},
		{"currency not a string", store.Deals, map[string]any{"name": "D", "currency": 978.0}, nil, "currency", "got a number"},
		{"bad reference", store.Deals, map[string]any{"name": "D", "account_id": "not-an-id"}, nil, "account_id", "valid id"},
		{"reference as operator", store.Contacts, map[string]any{"first_name": "A", "account_id": `{"$ne":null}`}, nil, "account_id", "valid id"},
		{"impossible date", store.Activities, map[string]any{"type": "Call", "title": "T", "due_date": "2025-02-30"}, nil, "due_date", "date"},
		{"other date format", store.Activities, map[string]any{"type": "Call", "title": "T", "due_date": "30/06/2025"}, nil, "due_date", "date"},
		{"date with space", store.Activities, map[string]any{"type": "Call", "title": "T", "due_date": "2025-06-30 12:00"}, nil, "due_date", "date"},
		{"unknown enum value", store.Activities, map[string]any{"type": "Lunch", "title": "T"}, nil, "type", "Call, Email, Meeting, Task"},
		{"enum missing", store.Activities, map[string]any{"title": "T"}, nil, "type", "is required"},
		{"contact without names", store.Contacts, map[string]any{"email": "a@example.com"}, nil, "first_name", "first_name, last_name"},
		{"contact with blank names", store.Contacts, map[string]any{"first_name": " ", "last_name": ""}, nil, "first_name", "at least one"},
		{"note without content", store.Notes, map[string]any{"title": "T"}, nil, "content", "is required"},
		{"note too long", store.Notes, map[string]any{"content": strings.Repeat("x", 100_001)}, nil, "content", "at most 100000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.r.ValidateCreate(c.in)
			if c.want != nil {
				if err != nil {
					t.Fatalf("ValidateCreate(%v): %v", c.in, err)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Errorf("ValidateCreate(%v) =\n\t%#v\nwant\n\t%#v", c.in, got, c.want)
				}
				return
			}
			var e *store.Error
			if !errors.As(err, &e) || e.Code != store.EBADREQUEST {
				t.Fatalf("ValidateCreate(%v) = %v, %v; want a bad_request error", c.in, got, err)
			}
			if e.Field != c.field {
				t.Errorf("error field = %q, want %q", e.Field, c.field)
			}
			if c.field != "" && !strings.HasPrefix(e.Message, c.field) && !strings.Contains(e.Message, `"`+c.field+`"`) {
				t.Errorf("message %q does not name the field %q", e.Message, c.field)
			}
			if !strings.Contains(e.Message, c.msg) {
				t.Errorf("message %q does not contain %q", e.Message, c.msg)
			}
		})
	}
}

// minimalInput is a valid create body of each resource.
var minimalInput = map[*store.Resource]map[string]any{
	store.Accounts:   {"name": "A"},
	store.Contacts:   {"first_name": "A"},
	store.Leads:      {"name": "L"},
	store.Deals:      {"name": "D"},
	store.Activities: {"type": "Call", "title": "T"},
	store.Notes:      {"content": "C"},
}

// Every field of every resource refuses the wrong JSON types with an error
// naming it.
func TestValidateCreateWrongTypesEveryField(t *testing.T) {
	for _, r := range store.Resources {
		base, ok := minimalInput[r]
		if !ok {
			t.Fatalf("no minimal input for resource %s", r.Name)
		}
		if _, err := r.ValidateCreate(base); err != nil {
			t.Fatalf("minimal %s: %v", r.Name, err)
		}
		for _, f := range r.Fields {
			wrong := []any{true, []any{}, map[string]any{}}
			if f.Type == store.FieldNumber {
				wrong = append(wrong, "1")
			} else {
				wrong = append(wrong, 1.0)
			}
			for _, v := range wrong {
				in := map[string]any{f.Name: v}
				for k, bv := range base {
					if k != f.Name {
						in[k] = bv
					}
				}
				_, err := r.ValidateCreate(in)
				var e *store.Error
				if !errors.As(err, &e) || e.Code != store.EBADREQUEST || e.Field != f.Name {
					t.Errorf("%s.%s = %#v: %v, want bad_request on %s", r.Name, f.Name, v, err, f.Name)
				}
			}
		}
	}
}

func TestResourcesDescribed(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range store.Resources {
		if seen[r.Name] || r.Name == "" || r.Singular == "" || r.Description == "" {
			t.Errorf("resource %+v: names must be set and unique, with a description", r)
		}
		seen[r.Name] = true
		if got, ok := store.ResourceByName(r.Name); !ok || got != r {
			t.Errorf("ResourceByName(%q) = %v, %v", r.Name, got, ok)
		}
		fields := map[string]bool{}
		for _, f := range r.Fields {
			if fields[f.Name] || f.Description == "" {
				t.Errorf("%s.%s: duplicate or undescribed field", r.Name, f.Name)
			}
			fields[f.Name] = true
			if f.Type == store.FieldRef {
				if _, ok := store.ResourceByName(f.Ref); !ok {
					t.Errorf("%s.%s refers to unknown resource %q", r.Name, f.Name, f.Ref)
				}
			}
			if f.Type == store.FieldEnum && len(f.Enum) == 0 {
				t.Errorf("%s.%s is an enum without values", r.Name, f.Name)
			}
			if got, ok := r.Field(f.Name); !ok || got.Name != f.Name {
				t.Errorf("%s.Field(%q) = %v, %v", r.Name, f.Name, got, ok)
			}
		}
		for _, name := range r.OneOfRequired {
			if !fields[name] {
				t.Errorf("%s: one-of-required names unknown field %q", r.Name, name)
			}
		}
	}
	if _, ok := store.ResourceByName("widgets"); ok {
		t.Error("ResourceByName found an unknown resource")
	}
	if _, ok := store.Accounts.Field("nope"); ok {
		t.Error("Field found an unknown field")
	}
}

func TestRecordJSON(t *testing.T) {
	created := time.Date(2025, 1, 15, 10, 0, 0, 123_000_000, time.UTC)
	rec := store.Record{
		Resource:    store.Deals,
		ID:          someID,
		WorkspaceID: "0198c0de-0000-7000-8000-000000000000",
		Fields:      map[string]any{"name": "Big \"deal\" <ü>", "value": 1234.5, "currency": "EUR"},
		CreatedAt:   created,
		UpdatedAt:   created.Add(time.Second).In(time.FixedZone("CEST", 2*3600)),
		CreatedVia:  store.CreatedViaAPI,
		APIKeyID:    "0198c0de-ffff-7000-8000-000000000000",
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"0198c0de-1234-7abc-8def-0123456789ab","name":"Big \"deal\" \u003cü\u003e","value":1234.5,"currency":"EUR",` +
		`"stage":null,"account_id":null,"external_id":null,"created_at":"2025-01-15T10:00:00.123Z","updated_at":"2025-01-15T10:00:01.123Z",` +
		`"created_via":"api","api_key_id":"0198c0de-ffff-7000-8000-000000000000"}`
	if string(b) != want {
		t.Errorf("json.Marshal(record) =\n\t%s\nwant\n\t%s", b, want)
	}
	if strings.Contains(string(b), rec.WorkspaceID) {
		t.Error("the workspace id is written")
	}
	// A pointer marshals the same way.
	if b2, _ := json.Marshal(&rec); string(b2) != want {
		t.Errorf("json.Marshal(&record) = %s", b2)
	}

	back := store.Record{Resource: store.Deals}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != rec.ID || back.CreatedVia != rec.CreatedVia || back.APIKeyID != rec.APIKeyID ||
		!back.CreatedAt.Equal(rec.CreatedAt) || !back.UpdatedAt.Equal(rec.UpdatedAt) {
		t.Errorf("round trip = %+v, want %+v", back, rec)
	}
	if !reflect.DeepEqual(back.Fields, rec.Fields) {
		t.Errorf("round trip fields = %#v, want %#v (nulls dropped)", back.Fields, rec.Fields)
	}

	// With a resource set, keys of other resources are dropped; without, kept.
	in := []byte(`{"id":"x","name":"A","first_name":"B","created_at":"2025-01-15T10:00:00Z"}`)
	acc := store.Record{Resource: store.Accounts}
	if err := json.Unmarshal(in, &acc); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(acc.Fields, map[string]any{"name": "A"}) {
		t.Errorf("with a resource: fields %v", acc.Fields)
	}
	var loose store.Record
	if err := json.Unmarshal(in, &loose); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(loose.Fields, map[string]any{"name": "A", "first_name": "B"}) {
		t.Errorf("without a resource: fields %v", loose.Fields)
	}

	for _, bad := range []string{`[]`, `{"created_at":"yesterday"}`, `{"updated_at":"2025-13-01T00:00:00Z"}`, `{`} {
		var r store.Record
		if err := json.Unmarshal([]byte(bad), &r); err == nil {
			t.Errorf("json.Unmarshal(%s) succeeded", bad)
		}
	}
}

func TestUsageEventDay(t *testing.T) {
	e := store.UsageEvent{Time: time.Date(2025, 3, 1, 1, 30, 0, 0, time.FixedZone("CET", 3600*2))}
	if got := e.Day(); got != "2025-02-28" {
		t.Errorf("Day() = %q, want the UTC day 2025-02-28", got)
	}
}

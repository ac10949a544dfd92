package mcp_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	hustackmcp "github.com/hustack/hustack/mcp"
	"github.com/hustack/hustack/store"
)

// TestInputSchemas compiles every tool's input schema and checks that it
// takes and refuses what the operation does, so that a client validating
// arguments against it never refuses a valid call.
func TestInputSchemas(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	compiled := map[string]*jsonschema.Schema{}
	for _, tl := range hustackmcp.Tools() {
		b, err := json.Marshal(tl.InputSchema)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		loc := "mem:///input/" + tl.Name + ".json"
		if err := c.AddResource(loc, doc); err != nil {
			t.Fatal(err)
		}
		if compiled[tl.Name], err = c.Compile(loc); err != nil {
			t.Fatalf("%s: %v", tl.Name, err)
		}
	}
	id := store.NewID()
	for _, tc := range []struct {
		tool  string
		args  string
		valid bool
	}{
		{"update_account", `{"id":"` + id + `","country":null,"website":""}`, true},
		{"update_account", `{"id":"` + id + `","name":null}`, false}, // required fields cannot be cleared
		{"update_activity", `{"id":"` + id + `","type":"Call","due_date":null}`, true},
		{"update_activity", `{"id":"` + id + `","type":null}`, false},
		{"update_deal", `{"id":"` + id + `","value":null,"currency":null}`, true},
		{"update_deal", `{"id":"` + id + `","value":-1}`, false},
		{"update_deal", `{"value":1}`, false},
		{"upsert_contact", `{"external_id":"crm-1","first_name":"Ada","email":null}`, true},
		{"upsert_contact", `{"first_name":"Ada"}`, false},
		{"upsert_contact", `{"external_id":""}`, false},
		{"delete_note", `{"id":"` + id + `","idempotency_key":"retry-1"}`, true},
		{"delete_note", `{"id":"` + id + `","idempotency_key":""}`, false},
		{"delete_note", `{"id":"` + id + `","idempotency_key":"tab\tkey"}`, false},
		{"batch_create_notes", `{"records":[{"content":"a"},{"content":"b","title":"t"}],"idempotency_key":"k"}`, true},
		{"batch_create_notes", `{"records":[]}`, false},
		{"batch_create_notes", `{"records":[{"title":"no content"}]}`, false},
		{"batch_upsert_leads", `{"records":[{"external_id":"a","status":null}]}`, true},
		{"batch_upsert_leads", `{"records":[{"name":"no external id"}]}`, false},
		{"list_activities", `{"type":"Meeting","related_account_id":"` + id + `","sort":"updated_at",` +
			`"updated_after":"2025-01-31T00:00:00Z","q":"kick","include_deleted":true,"cursor":"abc","limit":10}`, true},
		{"list_activities", `{"sort":"title"}`, false},
		{"list_activities", `{"include_deleted":"yes"}`, false},
		{"list_accounts", `{"stage":"Won"}`, false},
		{"create_account", `{"name":"Acme","idempotency_key":"k"}`, true},
		{"get_account", `{"id":"` + id + `","idempotency_key":"k"}`, false}, // reads take no key
	} {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader([]byte(tc.args)))
		if err != nil {
			t.Fatal(err)
		}
		if err := compiled[tc.tool].Validate(inst); (err == nil) != tc.valid {
			t.Errorf("%s %s: valid %v, want %v (%v)", tc.tool, tc.args, err == nil, tc.valid, err)
		}
	}
}

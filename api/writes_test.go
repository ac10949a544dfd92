package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// TestWrites runs the update, delete, upsert and batch endpoints through the
// real HTTP stack, on each backend.
func TestWrites(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		for _, tc := range []struct {
			name string
			fn   func(t *testing.T, e *env)
		}{
			{"Update", testUpdate}, {"Delete", testDelete}, {"Upsert", testUpsert},
			{"ConcurrentUpserts", testConcurrentUpserts}, {"Batch", testBatch}, {"BatchUpsert", testBatchUpsert},
		} {
			t.Run(tc.name, func(t *testing.T) { tc.fn(t, newEnv(t, open(t))) })
		}
	})
}

// fields checks the named fields of a record response; the other fields
// are checked by the callers that care.
func fields(want map[string]any) func(t *testing.T, r response) {
	return func(t *testing.T, r response) {
		t.Helper()
		got := r.json(t)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %#v, want %#v", k, got[k], v)
			}
		}
	}
}

// timeField parses an RFC 3339 field of a JSON object.
func timeField(t *testing.T, m map[string]any, name string) time.Time {
	t.Helper()
	s, _ := m[name].(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("%s = %#v: %v", name, m[name], err)
	}
	return ts
}

// updated checks that a PATCH answer is the record before plus changes,
// with updated_at advanced, and that it was stored.
func updated(e *env, r *store.Resource, before *store.Record, changes map[string]any) func(t *testing.T, resp response) {
	return func(t *testing.T, resp response) {
		t.Helper()
		got := resp.json(t)
		want := map[string]any{}
		for _, f := range r.Fields {
			want[f.Name] = before.Fields[f.Name]
		}
		for k, v := range changes {
			want[k] = v
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %#v, want %#v", k, got[k], v)
			}
		}
		if got["id"] != before.ID || got["api_key_id"] != before.APIKeyID || got["created_via"] != "api" {
			t.Errorf("server fields changed: %v", got)
		}
		if c := timeField(t, got, "created_at"); !c.Equal(before.CreatedAt) {
			t.Errorf("created_at %v, want %v", c, before.CreatedAt)
		}
		if u := timeField(t, got, "updated_at"); !u.After(before.UpdatedAt) {
			t.Errorf("updated_at %v did not advance past %v", u, before.UpdatedAt)
		}
		stored := e.do(t, request{method: http.MethodGet, path: "/api/v1/" + r.Name + "/" + before.ID, key: e.keyA})
		if string(stored.body) != string(resp.body) {
			t.Errorf("stored record\n%s\ndiffers from the answer\n%s", stored.body, resp.body)
		}
	}
}

func testUpdate(t *testing.T, e *env) {
	mk := func(r *store.Resource, f map[string]any) *store.Record { return e.create(e.keyA, r, f) }
	full := map[string]any{"name": "Acme", "industry": "Software", "country": "US", "email": "info@acme.example", "website": "https://acme.example"}
	acc := mk(store.Accounts, full)
	acc2 := mk(store.Accounts, full)
	acc3 := mk(store.Accounts, full)
	acc4 := mk(store.Accounts, full)
	acc5 := mk(store.Accounts, full)
	taken := mk(store.Accounts, map[string]any{"name": "Taken", "external_id": "taken-1"})
	target := mk(store.Accounts, map[string]any{"name": "Target"})
	contact := mk(store.Contacts, map[string]any{"last_name": "Lovelace", "account_id": acc.ID})
	contact2 := mk(store.Contacts, map[string]any{"last_name": "Hopper", "account_id": acc.ID})
	onlyLast := mk(store.Contacts, map[string]any{"last_name": "Solo"})
	deal := mk(store.Deals, map[string]any{"name": "Big", "value": 10.0})
	other := e.create(e.keyB, store.Accounts, map[string]any{"name": "Other"})
	gone := mk(store.Notes, map[string]any{"content": "to be deleted"})
	if err := e.scoped(e.keyA).DeleteRecord(t.Context(), store.Notes, gone.ID); err != nil {
		t.Fatal(err)
	}

	patch := func(r *store.Resource, id, body string) request {
		return request{method: http.MethodPatch, path: "/api/v1/" + r.Name + "/" + id, key: e.keyA, body: jsonBody(body)}
	}
	run(t, e, []group{
		{http.StatusOK, []scenario{
			{name: "one field, the others kept", req: patch(store.Accounts, acc.ID, `{"industry":" Retail "}`),
				check: updated(e, store.Accounts, acc, map[string]any{"industry": "Retail"})},
			{name: "null clears an optional field", req: patch(store.Accounts, acc2.ID, `{"country":null,"website":null}`),
				check: updated(e, store.Accounts, acc2, map[string]any{"country": nil, "website": nil})},
			{name: "empty string clears", req: patch(store.Accounts, acc3.ID, `{"email":"  "}`),
				check: updated(e, store.Accounts, acc3, map[string]any{"email": nil})},
			{name: "empty patch advances updated_at", req: patch(store.Accounts, acc4.ID, `{}`),
				check: updated(e, store.Accounts, acc4, nil)},
			{name: "server fields ignored", req: patch(store.Accounts, acc5.ID,
				fmt.Sprintf(`{"id":%q,"created_at":"1999-01-01T00:00:00Z","workspace_id":%q,"api_key_id":"k","name":"Renamed"}`, other.ID, e.wsB.ID)),
				check: updated(e, store.Accounts, acc5, map[string]any{"name": "Renamed"})},
			{name: "reference changed", req: patch(store.Contacts, contact.ID, fmt.Sprintf(`{"account_id":%q}`, target.ID)),
				check: updated(e, store.Contacts, contact, map[string]any{"account_id": target.ID})},
			{name: "reference cleared", req: patch(store.Contacts, contact2.ID, `{"account_id":null,"first_name":"Grace"}`),
				check: updated(e, store.Contacts, contact2, map[string]any{"account_id": nil, "first_name": "Grace"})},
			{name: "number and currency normalised", req: patch(store.Deals, deal.ID, `{"value":2.5e3,"currency":"gbp","stage":"Won"}`),
				check: updated(e, store.Deals, deal, map[string]any{"value": 2500.0, "currency": "GBP", "stage": "Won"})},
			{name: "own external id kept", req: patch(store.Accounts, taken.ID, `{"external_id":"taken-1"}`),
				check: fields(map[string]any{"external_id": "taken-1", "name": "Taken"})},
		}},
		{http.StatusBadRequest, []scenario{
			{name: "required field null", req: patch(store.Accounts, target.ID, `{"name":null}`), msg: []string{"name", "cannot be cleared"}},
			{name: "required field blank", req: patch(store.Accounts, target.ID, `{"name":"   "}`), msg: []string{"name", "cannot be cleared"}},
			{name: "last of one-of cleared", req: patch(store.Contacts, onlyLast.ID, `{"last_name":null}`), msg: []string{"first_name", "last_name"}},
			{name: "unknown field", req: patch(store.Accounts, target.ID, `{"colour":"red"}`), msg: []string{"colour"}},
			{name: "mongo operator key", req: patch(store.Accounts, target.ID, `{"$set":{"workspace_id":"x"}}`), msg: []string{"$set"}},
			{name: "operator as value", req: patch(store.Accounts, target.ID, `{"name":{"$ne":""}}`), msg: []string{"name"}},
			{name: "wrong type", req: patch(store.Deals, deal.ID, `{"value":"lots"}`), msg: []string{"value"}},
			{name: "bad email", req: patch(store.Accounts, target.ID, `{"email":"nope"}`), msg: []string{"email"}},
			{name: "bad enum", req: patch(store.Activities, store.NewID(), `{"type":"Lunch"}`), msg: []string{"type"}},
			{name: "array body", req: patch(store.Accounts, target.ID, `[{"name":"x"}]`), msg: []string{"JSON object", "array"}},
			{name: "empty body", req: patch(store.Accounts, target.ID, ``), msg: []string{"empty"}},
			{name: "invalid JSON", req: patch(store.Accounts, target.ID, `{"name":`), msg: []string{"not valid JSON"}},
			{name: "reference to another workspace", req: patch(store.Contacts, onlyLast.ID, fmt.Sprintf(`{"account_id":%q}`, other.ID)),
				msg: []string{"account_id"}},
			{name: "query parameter", req: patch(store.Accounts, target.ID+"?upsert=true", `{"name":"x"}`), msg: []string{"upsert"}},
		}},
		{http.StatusNotFound, []scenario{
			{name: "other workspace", req: patch(store.Accounts, other.ID, `{"name":"Mine now"}`), msg: []string{"Account not found."}},
			{name: "does not exist", req: patch(store.Accounts, store.NewID(), `{"name":"x"}`)},
			{name: "id of another resource", req: patch(store.Accounts, contact.ID, `{"name":"x"}`)},
			{name: "deleted", req: patch(store.Notes, gone.ID, `{"content":"back"}`), msg: []string{"Note not found."}},
			{name: "malformed id", req: patch(store.Accounts, "123", `{"name":"x"}`)},
			{name: "operator id", req: patch(store.Accounts, "%7B%22$gt%22:%22%22%7D", `{"name":"x"}`)},
			{name: "batch is not an id", req: patch(store.Accounts, "batch", `{"name":"x"}`)},
		}},
		{http.StatusConflict, []scenario{
			{name: "external id of another record", req: patch(store.Accounts, target.ID, `{"external_id":"taken-1"}`),
				msg: []string{"external_id", "taken-1"}},
		}},
		{http.StatusUnsupportedMediaType, []scenario{
			{name: "form body", req: func() request {
				r := patch(store.Accounts, target.ID, `name=x`)
				r.header = map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
				return r
			}()},
		}},
	})
	t.Run("other workspace's record untouched", func(t *testing.T) {
		if got := e.get(t, e.keyB, store.Accounts, other.ID); got["name"] != "Other" {
			t.Errorf("B's account: %v", got)
		}
	})
}

func testDelete(t *testing.T, e *env) {
	mk := func(r *store.Resource, f map[string]any) *store.Record { return e.create(e.keyA, r, f) }
	withContact := mk(store.Accounts, map[string]any{"name": "Has contact"})
	contact := mk(store.Contacts, map[string]any{"last_name": "Referrer", "account_id": withContact.ID})
	withDeal := mk(store.Accounts, map[string]any{"name": "Has deal"})
	mk(store.Deals, map[string]any{"name": "Referrer", "account_id": withDeal.ID})
	withNote := mk(store.Accounts, map[string]any{"name": "Has note"})
	mk(store.Notes, map[string]any{"content": "about it", "related_account_id": withNote.ID})
	plain := mk(store.Accounts, map[string]any{"name": "Plain", "external_id": "plain-1"})
	lead := mk(store.Leads, map[string]any{"name": "Lead"})
	other := e.create(e.keyB, store.Accounts, map[string]any{"name": "Other"})

	del := func(r *store.Resource, id string) request {
		return request{method: http.MethodDelete, path: "/api/v1/" + r.Name + "/" + id, key: e.keyA}
	}
	run(t, e, []group{
		{http.StatusConflict, []scenario{
			{name: "account with a contact", req: del(store.Accounts, withContact.ID), msg: []string{"contacts (account_id)"}},
			{name: "account with a deal", req: del(store.Accounts, withDeal.ID), msg: []string{"deals (account_id)"}},
			{name: "account with a note", req: del(store.Accounts, withNote.ID), msg: []string{"notes (related_account_id)"}},
		}},
		{http.StatusNoContent, []scenario{
			{name: "plain account", req: del(store.Accounts, plain.ID)},
			{name: "lead", req: del(store.Leads, lead.ID)},
			{name: "the referring contact", req: del(store.Contacts, contact.ID)},
			{name: "account no longer referenced", req: del(store.Accounts, withContact.ID)},
		}},
		{http.StatusNotFound, []scenario{
			{name: "deleted twice", req: del(store.Accounts, plain.ID), msg: []string{"Account not found."}},
			{name: "get after delete", req: request{method: http.MethodGet, path: "/api/v1/accounts/" + plain.ID, key: e.keyA}},
			{name: "other workspace", req: del(store.Accounts, other.ID)},
			{name: "does not exist", req: del(store.Accounts, store.NewID())},
			{name: "id of another resource", req: del(store.Accounts, lead.ID)},
			{name: "malformed id", req: del(store.Accounts, "not-an-id")},
		}},
		{http.StatusBadRequest, []scenario{
			{name: "query parameter", req: del(store.Accounts, withDeal.ID+"?force=true"), msg: []string{"force"}},
		}},
	})

	t.Run("other workspace's record kept", func(t *testing.T) {
		e.get(t, e.keyB, store.Accounts, other.ID)
	})
	t.Run("lists hide the record, include_deleted shows the tombstone", func(t *testing.T) {
		list := func(q string) page {
			r := e.do(t, request{method: http.MethodGet, path: "/api/v1/accounts" + q, key: e.keyA})
			if r.status != http.StatusOK {
				t.Fatalf("list%s: %d %s", q, r.status, clip(r.body))
			}
			return decodePage(t, r)
		}
		if ids := list("").ids(); slices.Contains(ids, plain.ID) || !slices.Contains(ids, withDeal.ID) {
			t.Errorf("list shows %v", ids)
		}
		if ids := list("?external_id=plain-1").ids(); len(ids) != 0 {
			t.Errorf("filter by the deleted record's external id: %v", ids)
		}
		var tomb map[string]any
		for _, d := range list("?include_deleted=true").Data {
			if d["id"] == plain.ID {
				tomb = d
			}
		}
		if tomb == nil {
			t.Fatal("no tombstone with include_deleted=true")
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range tomb {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, []string{"created_at", "deleted", "deleted_at", "external_id", "id", "updated_at"}) {
			t.Errorf("tombstone shows %v: %v", keys, tomb)
		}
		del := timeField(t, tomb, "deleted_at")
		if tomb["deleted"] != true || tomb["external_id"] != "plain-1" || !del.Equal(timeField(t, tomb, "updated_at")) ||
			del.Before(plain.UpdatedAt) || !timeField(t, tomb, "created_at").Equal(plain.CreatedAt) {
			t.Errorf("tombstone %v", tomb)
		}
		if ids := list("?include_deleted=true&external_id=plain-1").ids(); !slices.Equal(ids, []string{plain.ID}) {
			t.Errorf("tombstones by external id: %v", ids)
		}
		if ids := list("?include_deleted=false").ids(); slices.Contains(ids, plain.ID) {
			t.Error("include_deleted=false shows the tombstone")
		}
	})
	t.Run("external id free again", func(t *testing.T) {
		r := e.do(t, request{method: http.MethodPost, path: "/api/v1/accounts", key: e.keyA, body: jsonBody(`{"name":"Plain 2","external_id":"plain-1"}`)})
		if r.status != http.StatusCreated {
			t.Errorf("create with a deleted record's external id: %d %s", r.status, clip(r.body))
		}
	})
}

func testUpsert(t *testing.T, e *env) {
	other := e.create(e.keyB, store.Accounts, map[string]any{"name": "Other", "external_id": "shared-1"})
	otherWS := e.create(e.keyB, store.Accounts, map[string]any{"name": "B's account"})
	put := func(r *store.Resource, ext, body string) request {
		return request{method: http.MethodPut, path: "/api/v1/" + r.Name + "/by-external-id/" + ext, key: e.keyA, body: jsonBody(body)}
	}
	var first map[string]any // the record created by the first upsert
	sameRecord := func(want map[string]any) func(t *testing.T, r response) {
		return func(t *testing.T, r response) {
			t.Helper()
			fields(want)(t, r)
			if first == nil {
				t.Fatal("the creating upsert failed")
			}
			got := r.json(t)
			if got["id"] != first["id"] || got["created_at"] != first["created_at"] {
				t.Errorf("upsert made another record: %v, first %v", got, first)
			}
			if !timeField(t, got, "updated_at").After(timeField(t, first, "updated_at")) {
				t.Errorf("updated_at %v did not advance", got["updated_at"])
			}
			if r.header.Get("Location") != "" {
				t.Error("Location on an update")
			}
		}
	}
	slash := "sf/001 ü+x"
	run(t, e, []group{
		{http.StatusCreated, []scenario{
			{name: "new", req: put(store.Accounts, "sf-001", `{"name":"Acme","industry":"Software"}`),
				check: func(t *testing.T, r response) {
					checkCreated(e, map[string]any{"name": "Acme", "industry": "Software", "external_id": "sf-001"})(t, r)
					first = r.json(t)
				}},
			{name: "external id of another workspace", req: put(store.Accounts, "shared-1", `{"name":"Mine"}`),
				check: func(t *testing.T, r response) {
					checkCreated(e, map[string]any{"name": "Mine", "external_id": "shared-1"})(t, r)
					if r.json(t)["id"] == other.ID {
						t.Error("upsert took workspace B's record")
					}
				}},
			{name: "escaped external id", req: put(store.Accounts, url.PathEscape(slash), `{"name":"Slashed"}`),
				check: checkCreated(e, map[string]any{"external_id": slash})},
			{name: "plus stays plus", req: put(store.Accounts, "a+b", `{"name":"Plus"}`),
				check: checkCreated(e, map[string]any{"external_id": "a+b"})},
			{name: "contact", req: put(store.Contacts, "c-1", `{"last_name":"Ref"}`),
				check: checkCreated(e, map[string]any{"last_name": "Ref", "external_id": "c-1"})},
		}},
		{http.StatusOK, []scenario{
			{name: "same external id updates", req: put(store.Accounts, "sf-001", `{"name":"Acme Inc","country":"US"}`),
				check: sameRecord(map[string]any{"name": "Acme Inc", "industry": "Software", "country": "US", "external_id": "sf-001"})},
			{name: "null clears", req: put(store.Accounts, "sf-001", `{"industry":null}`),
				check: sameRecord(map[string]any{"name": "Acme Inc", "industry": nil, "country": "US"})},
			{name: "body repeats the external id", req: put(store.Accounts, "sf-001", `{"external_id":"sf-001","phone":"1"}`),
				check: sameRecord(map[string]any{"phone": "1", "external_id": "sf-001"})},
			{name: "body external id null", req: put(store.Accounts, "sf-001", `{"external_id":null,"phone":"2"}`),
				check: sameRecord(map[string]any{"phone": "2", "external_id": "sf-001"})},
			{name: "escaped external id again", req: put(store.Accounts, url.PathEscape(slash), `{"industry":"Retail"}`),
				check: fields(map[string]any{"name": "Slashed", "industry": "Retail", "external_id": slash})},
		}},
		{http.StatusBadRequest, []scenario{
			{name: "body external id differs", req: put(store.Accounts, "sf-001", `{"external_id":"sf-002","name":"x"}`),
				msg: []string{"external_id", "sf-001"}},
			{name: "new without required field", req: put(store.Accounts, "sf-new", `{"industry":"x"}`), msg: []string{"name", "required"}},
			{name: "required field cleared", req: put(store.Accounts, "sf-001", `{"name":null}`), msg: []string{"name"}},
			{name: "blank external id", req: put(store.Accounts, "%20%20", `{"name":"x"}`), msg: []string{"external_id"}},
			{name: "external id too long", req: put(store.Accounts, strings.Repeat("x", 256), `{"name":"x"}`), msg: []string{"external_id", "at most"}},
			{name: "NUL in external id", req: put(store.Accounts, "a%00b", `{"name":"x"}`), msg: []string{"external_id"}},
			{name: "invalid UTF-8 external id", req: put(store.Accounts, "%ff", `{"name":"x"}`), msg: []string{"external_id"}},
			{name: "unknown field", req: put(store.Accounts, "sf-001", `{"colour":"red"}`), msg: []string{"colour"}},
			{name: "array body", req: put(store.Accounts, "sf-001", `[]`), msg: []string{"JSON object"}},
			{name: "empty body", req: put(store.Accounts, "sf-001", ``), msg: []string{"empty"}},
			{name: "reference to another workspace", req: put(store.Contacts, "c-2", fmt.Sprintf(`{"last_name":"x","account_id":%q}`, otherWS.ID)),
				msg: []string{"account_id"}},
			{name: "query parameter", req: put(store.Accounts, "sf-001?dry_run=1", `{"name":"x"}`), msg: []string{"dry_run"}},
		}},
		{http.StatusMethodNotAllowed, []scenario{
			{name: "GET by external id", req: request{method: http.MethodGet, path: "/api/v1/accounts/by-external-id/sf-001", key: e.keyA},
				check: allow("PUT")},
		}},
		{http.StatusNotFound, []scenario{
			{name: "no external id", req: put(store.Accounts, "", `{"name":"x"}`)},
			{name: "nested path", req: put(store.Accounts, "a/b", `{"name":"x"}`)},
		}},
	})

	t.Run("after delete, the external id creates anew", func(t *testing.T) {
		if first == nil {
			t.Skip("the creating upsert failed")
		}
		id := first["id"].(string)
		if err := e.scoped(e.keyA).DeleteRecord(t.Context(), store.Accounts, id); err != nil {
			t.Fatal(err)
		}
		r := e.do(t, put(store.Accounts, "sf-001", `{"name":"Reborn"}`))
		if r.status != http.StatusCreated || r.json(t)["id"] == id {
			t.Errorf("status %d: %s", r.status, clip(r.body))
		}
	})
	t.Run("B's record untouched", func(t *testing.T) {
		if got := e.get(t, e.keyB, store.Accounts, other.ID); got["name"] != "Other" || got["external_id"] != "shared-1" {
			t.Errorf("B's record: %v", got)
		}
	})
}

// testConcurrentUpserts sends concurrent upserts of one new external id:
// they yield one record, created once and updated by the others.
func testConcurrentUpserts(t *testing.T, e *env) {
	const n = 10
	statuses := make([]int, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r, err := e.try(t.Context(), request{method: http.MethodPut, path: "/api/v1/leads/by-external-id/hub-42", key: e.keyA,
				body: jsonBody(fmt.Sprintf(`{"name":"Writer %d"}`, i))})
			if err != nil {
				return
			}
			statuses[i] = r.status
			var rec struct {
				ID string `json:"id"`
			}
			if r.status < 300 && json.Unmarshal(r.body, &rec) == nil {
				ids[i] = rec.ID
			}
		})
	}
	wg.Wait()
	var created int
	for i, st := range statuses {
		switch st {
		case http.StatusCreated:
			created++
		case http.StatusOK:
		default:
			t.Errorf("upsert %d: status %d", i, st)
		}
		if ids[i] != ids[0] {
			t.Errorf("upsert %d answered record %s, upsert 0 %s", i, ids[i], ids[0])
		}
	}
	if created != 1 {
		t.Errorf("%d upserts created, want 1 (statuses %v)", created, statuses)
	}
	r := e.do(t, request{method: http.MethodGet, path: "/api/v1/leads?external_id=hub-42", key: e.keyA})
	if got := decodePage(t, r).ids(); len(got) != 1 {
		t.Errorf("records with the external id: %v", got)
	}
}

func testBatch(t *testing.T, e *env) {
	acc := e.create(e.keyA, store.Accounts, map[string]any{"name": "Parent"})
	other := e.create(e.keyB, store.Accounts, map[string]any{"name": "Other"})
	post := func(path, body string) request {
		return request{method: http.MethodPost, path: path, key: e.keyA, body: jsonBody(body)}
	}
	many := func(n int) string {
		recs := make([]string, n)
		for i := range recs {
			recs[i] = fmt.Sprintf(`{"content":"note %d"}`, i)
		}
		return `{"records":[` + strings.Join(recs, ",") + `]}`
	}
	run(t, e, []group{
		{http.StatusOK, []scenario{
			{name: "mixed results", req: post("/api/v1/contacts/batch", fmt.Sprintf(`{"records":[
				{"first_name":"Ada","account_id":%q},
				{"email":"nobody@example.com"},
				{"last_name":"Hopper","external_id":"c-7"},
				42,
				{"last_name":"Dup","external_id":"c-7"},
				{"last_name":"Foreign","account_id":%q},
				{"last_name":"Odd","shoe_size":44},
				null,
				{"last_name":"Last"}]}`, acc.ID, other.ID)),
				check: batchResults(e, store.Contacts, []itemWant{
					{status: 201, fields: map[string]any{"first_name": "Ada", "account_id": acc.ID}},
					{status: 400, code: "bad_request", msg: "first_name"},
					{status: 201, fields: map[string]any{"last_name": "Hopper", "external_id": "c-7"}},
					{status: 400, code: "bad_request", msg: "records[3]: must be a JSON object, got a number."},
					{status: 409, code: "conflict", msg: "c-7"},
					{status: 400, code: "bad_request", msg: "account_id"},
					{status: 400, code: "bad_request", msg: "shoe_size"},
					{status: 400, code: "bad_request", msg: "records[7]: must be a JSON object, got null."},
					{status: 201, fields: map[string]any{"last_name": "Last"}},
				})},
			{name: "one record", req: post("/api/v1/notes/batch", many(1)), check: batchResults(e, store.Notes, []itemWant{{status: 201}})},
			{name: "100 records", req: post("/api/v1/notes/batch", many(store.MaxBatch)), check: func(t *testing.T, r response) {
				b := decodeBatch(t, r)
				if len(b.Results) != store.MaxBatch {
					t.Fatalf("%d results", len(b.Results))
				}
				for i, it := range b.Results {
					if it.Index != i || it.Status != 201 || it.Data["content"] != fmt.Sprintf("note %d", i) {
						t.Fatalf("result %d: %+v", i, it)
					}
				}
			}},
		}},
		{http.StatusBadRequest, []scenario{
			{name: "no records", req: post("/api/v1/notes/batch", `{"records":[]}`), msg: []string{"records", "1 to 100", "got 0"}},
			{name: "101 records", req: post("/api/v1/notes/batch", many(store.MaxBatch+1)), msg: []string{"records", "1 to 100", "got 101"}},
			{name: "records missing", req: post("/api/v1/notes/batch", `{}`), msg: []string{"records", "required"}},
			{name: "records null", req: post("/api/v1/notes/batch", `{"records":null}`), msg: []string{"records", "array", "null"}},
			{name: "records an object", req: post("/api/v1/notes/batch", `{"records":{"content":"x"}}`), msg: []string{"records", "array"}},
			{name: "other key", req: post("/api/v1/notes/batch", `{"records":[{"content":"x"}],"atomic":true}`), msg: []string{"atomic"}},
			{name: "array body", req: post("/api/v1/notes/batch", `[{"content":"x"}]`), msg: []string{"JSON object"}},
			{name: "invalid JSON", req: post("/api/v1/notes/batch", `{"records":[`), msg: []string{"not valid JSON"}},
			{name: "query parameter", req: post("/api/v1/notes/batch?atomic=true", many(1)), msg: []string{"atomic"}},
		}},
		{http.StatusNotFound, []scenario{
			{name: "GET batch is an id", req: request{method: http.MethodGet, path: "/api/v1/notes/batch", key: e.keyA}},
			{name: "unknown sub-route", req: post("/api/v1/notes/batch/delete", many(1))},
		}},
		{http.StatusMethodNotAllowed, []scenario{
			{name: "PUT batch", req: request{method: http.MethodPut, path: "/api/v1/notes/batch", key: e.keyA, body: jsonBody(many(1))},
				check: allow("GET, POST, PATCH, DELETE")},
		}},
	})
	t.Run("only the valid records were stored", func(t *testing.T) {
		r := e.do(t, request{method: http.MethodGet, path: "/api/v1/contacts?sort=created_at", key: e.keyA})
		var names []string
		for _, d := range decodePage(t, r).Data {
			n, _ := d["last_name"].(string)
			if n == "" {
				n, _ = d["first_name"].(string)
			}
			names = append(names, n)
		}
		if !slices.Equal(names, []string{"Ada", "Hopper", "Last"}) {
			t.Errorf("contacts stored: %v", names)
		}
	})
}

// itemWant is the expected result of one batch item.
type itemWant struct {
	status int
	code   string
	msg    string
	fields map[string]any
}

// batchResults checks a batch answer item by item; created and updated
// records must be readable as answered.
func batchResults(e *env, r *store.Resource, want []itemWant) func(t *testing.T, resp response) {
	return func(t *testing.T, resp response) {
		t.Helper()
		b := decodeBatch(t, resp)
		if len(b.Results) != len(want) {
			t.Fatalf("%d results, want %d: %s", len(b.Results), len(want), clip(resp.body))
		}
		for i, w := range want {
			it := b.Results[i]
			if it.Index != i || it.Status != w.status {
				t.Errorf("result %d: index %d status %d, want %d: %+v", i, it.Index, it.Status, w.status, it)
				continue
			}
			if w.status >= 400 {
				if it.Error == nil || it.Data != nil || it.Error.Error != w.code || !strings.Contains(it.Error.Message, w.msg) {
					t.Errorf("result %d: error %+v data %v, want %s containing %q", i, it.Error, it.Data, w.code, w.msg)
				}
				continue
			}
			if it.Error != nil || it.Data == nil {
				t.Errorf("result %d: error %+v data %v", i, it.Error, it.Data)
				continue
			}
			for k, v := range w.fields {
				if it.Data[k] != v {
					t.Errorf("result %d: %s = %#v, want %#v", i, k, it.Data[k], v)
				}
			}
		}
		// Every record is stored as its last result answered.
		last := map[string]int{}
		for i, it := range b.Results {
			if id, ok := it.Data["id"].(string); ok {
				last[id] = i
			}
		}
		for id, i := range last {
			stored := e.get(t, e.keyA, r, id)
			for k, v := range b.Results[i].Data {
				if stored[k] != v {
					t.Errorf("result %d: stored %s = %#v, answered %#v", i, k, stored[k], v)
				}
			}
		}
	}
}

func testBatchUpsert(t *testing.T, e *env) {
	existing := e.create(e.keyA, store.Leads, map[string]any{"name": "Existing", "external_id": "L-1", "status": "New"})
	e.create(e.keyB, store.Leads, map[string]any{"name": "B's lead", "external_id": "L-2"})
	post := func(body string) request {
		return request{method: http.MethodPost, path: "/api/v1/leads/batch/upsert", key: e.keyA, body: jsonBody(body)}
	}
	run(t, e, []group{
		{http.StatusOK, []scenario{
			{name: "mixed results", req: post(`{"records":[
				{"external_id":"L-1","status":"Contacted"},
				{"external_id":"L-2","name":"Mine"},
				{"name":"No external id"},
				{"external_id":"  ","name":"Blank"},
				{"external_id":"L-3"},
				{"external_id":"L-2","source":"Web"},
				"L-4",
				{"external_id":"L-1","name":null}]}`),
				check: func(t *testing.T, r response) {
					batchResults(e, store.Leads, []itemWant{
						{status: 200, fields: map[string]any{"id": existing.ID, "name": "Existing", "status": "Contacted"}},
						{status: 201, fields: map[string]any{"name": "Mine", "external_id": "L-2"}},
						{status: 400, code: "bad_request", msg: "external_id"},
						{status: 400, code: "bad_request", msg: "external_id"},
						{status: 400, code: "bad_request", msg: "name"},
						{status: 200, fields: map[string]any{"name": "Mine", "source": "Web", "external_id": "L-2"}},
						{status: 400, code: "bad_request", msg: "records[6]: must be a JSON object, got a string."},
						{status: 400, code: "bad_request", msg: "name"},
					})(t, r)
					b := decodeBatch(t, r)
					if b.Results[1].Data["id"] != b.Results[5].Data["id"] {
						t.Error("the second upsert of L-2 made another record")
					}
				}},
		}},
		{http.StatusBadRequest, []scenario{
			{name: "no records", req: post(`{"records":[]}`), msg: []string{"records"}},
			{name: "not a batch", req: post(`{"external_id":"L-1"}`), msg: []string{"external_id", "records"}},
		}},
	})
	t.Run("B's lead untouched", func(t *testing.T) {
		r := e.do(t, request{method: http.MethodGet, path: "/api/v1/leads?external_id=L-2", key: e.keyB})
		if p := decodePage(t, r); len(p.Data) != 1 || p.Data[0]["name"] != "B's lead" {
			t.Errorf("B's leads with L-2: %s", clip(r.body))
		}
	})
}

// TestBatchInternalError makes one item of a batch fail inside the backend:
// that item answers a masked 500, logged once with its index, and the
// others succeed.
func TestBatchInternalError(t *testing.T) {
	g := gate(sqliteBackend(t))
	e := newEnv(t, g)
	g.failNext(nil, errors.New("disk on fire: secret detail"))
	r := e.do(t, request{method: http.MethodPost, path: "/api/v1/notes/batch", key: e.keyA,
		body: jsonBody(`{"records":[{"content":"a"},{"content":"b"},{"content":"c"}]}`)})
	if r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, clip(r.body))
	}
	batchResults(e, store.Notes, []itemWant{
		{status: 201, fields: map[string]any{"content": "a"}},
		{status: 500, code: "internal_server_error", msg: store.InternalMessage},
		{status: 201, fields: map[string]any{"content": "c"}},
	})(t, r)
	if strings.Contains(string(r.body), "secret") {
		t.Errorf("internal error reached the client: %s", r.body)
	}
	lines := e.logs.lines(t, "request failed")
	if len(lines) != 1 || lines[0]["index"] != 1.0 || lines[0]["request_id"] != r.header.Get("X-Request-Id") ||
		!strings.Contains(fmt.Sprint(lines[0]["error"]), "disk on fire") {
		t.Errorf("logged %d lines: %v", len(lines), lines)
	}
}

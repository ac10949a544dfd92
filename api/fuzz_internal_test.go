package api

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/sqlite"
)

// clientErr fails unless err is nil or a client error (a 4xx status): bad
// input never produces a 500.
func clientErr(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if st := StatusOf(store.ErrorCode(err)); st < 400 || st >= 500 {
		t.Fatalf("%s: %d %v", what, st, err)
	}
}

// FuzzRecordListQuery feeds hostile query strings to a record list, from the
// query parser down to a real SQLite query, through a key with a record
// filter: every error is a 4xx, and every answer respects the filter.
func FuzzRecordListQuery(f *testing.F) {
	for _, seed := range []string{
		"limit=10&offset=5", "sort=-updated_at&cursor=eyJzIjoiLWNyZWF0ZWRfYXQiLCJ0IjoxLCJpIjoiMDE5MGMwYzAtMDAwMC03MDAwLTgwMDAtMDAwMDAwMDAwMDAwIn0",
		"q=%25_%5C", "q=(a+)+$", "status[$gt]=", "source=Web&source=Vendor", "created_after=2024-01-01T00:00:00Z&created_before=2023-01-01T00:00:00Z",
		"include_deleted=true&source=Vendor+XYZ", "source=Web", "source=vendor+xyz", "limit=9999999999999999999999", "email=%ff", "%zz", "q=%00", "offset=-1",
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	svc := store.NewService(db)
	ws, err := svc.CreateWorkspace(ctx, "Fuzz")
	if err != nil {
		f.Fatal(err)
	}
	p := store.Principal{WorkspaceID: ws.ID, KeyID: store.NewID(), Scopes: store.AllScopes(), Filter: map[string]string{"source": "Vendor XYZ"}}
	admin := svc.Scoped(store.Principal{WorkspaceID: ws.ID, KeyID: store.NewID(), Scopes: store.AllScopes()})
	for _, src := range []string{"Vendor XYZ", "Web", ""} {
		if _, err := admin.CreateRecord(ctx, store.Leads, map[string]any{"name": "Lead " + src, "source": src}); err != nil {
			f.Fatal(err)
		}
	}
	var accepted []Param
	for _, rt := range Routes() {
		if rt.Operation.Action == store.ActionList && rt.Operation.Resource == store.Leads {
			accepted = rt.Query
		}
	}
	if accepted == nil {
		f.Fatal("no list route for leads")
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseQuery(raw, accepted)
		if err != nil {
			clientErr(t, "parseQuery", err)
			return
		}
		lp, err := recordListQuery(q, store.Leads)
		if err != nil {
			clientErr(t, "recordListQuery", err)
			return
		}
		page, err := svc.Scoped(p).FindRecords(ctx, store.Leads, lp)
		if err != nil {
			clientErr(t, "FindRecords", err)
			return
		}
		for _, rec := range page.Data {
			if rec.Fields["source"] != "Vendor XYZ" {
				t.Fatalf("query %q: the vendor key saw %v", raw, rec.Fields)
			}
		}
	})
}

// FuzzDecodeBody feeds hostile bodies to the JSON decoder and to every
// resource's validation, as create, update and batch routes would: every
// error is a 4xx.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		`{"name": "Acme"}`, `{"name": {"$gt": ""}}`, `{"value": 1e999}`, `{"value": -0}`, `{"records": [1, "a", {}]}`,
		`{"due_date": "2024-02-30"}`, `{"name": "\ud800"}`, `[{"name": "x"}]`, `{"a":1}{"b":2}`, "{\"name\": \"\xff\"}",
		`{"currency": "usd", "value": "12"}`, `{"account_id": "not-a-uuid"}`, `{"type": "call", "title": null}`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		obj, err := decodeObject(req)
		if err != nil {
			clientErr(t, "decodeObject", err)
			return
		}
		for _, r := range store.Resources {
			_, err := r.ValidateCreate(obj)
			clientErr(t, "ValidateCreate "+r.Name, err)
			_, _, err = r.ValidatePatch(obj)
			clientErr(t, "ValidatePatch "+r.Name, err)
		}
		_, err = keyInput(obj, store.NewService(nil).Now())
		clientErr(t, "keyInput", err)
		_, err = keyPolicy(obj)
		clientErr(t, "keyPolicy", err)
		req = httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		_, _, err = decodeBatch(req)
		clientErr(t, "decodeBatch", err)
	})
}

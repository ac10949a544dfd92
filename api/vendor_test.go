package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hustack/hustack/store"
)

// TestVendorKeyREST runs every record route of leads with a vendor key
// (record filter source = "Vendor XYZ") on each backend: it only ever reads,
// writes or deletes its own records, never another vendor's or the rest of
// the workspace's, whatever the route.
func TestVendorKeyREST(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		e := newEnv(t, open(t), withServiceOptions(store.WithKeyCacheTTL(0)))
		leadScopes := []store.Scope{store.ReadScope("leads"), store.WriteScope("leads")}
		_, vendor := e.newFilteredKey(e.wsA.ID, leadScopes, map[string]string{"source": "Vendor XYZ"})
		_, other := e.newFilteredKey(e.wsA.ID, leadScopes, map[string]string{"source": "Vendor ABC"})
		admin := e.keyA
		const path = "/api/v1/leads"

		// The workspace's records: one of the vendor, one of another vendor,
		// one from the web form and one without a source; the other ones
		// have external ids the vendor might guess.
		mine := e.create(vendor, store.Leads, map[string]any{"name": "Mine", "external_id": "v-0"})
		theirs := e.create(other, store.Leads, map[string]any{"name": "Theirs", "external_id": "abc-1"})
		web := e.create(admin, store.Leads, map[string]any{"name": "Web", "source": "Web", "external_id": "web-1"})
		none := e.create(admin, store.Leads, map[string]any{"name": "None", "external_id": "none-1"})
		deletedWeb := e.create(admin, store.Leads, map[string]any{"name": "Deleted", "source": "Web", "external_id": "gone-1"})
		if err := e.scoped(admin).DeleteRecord(t.Context(), store.Leads, deletedWeb.ID); err != nil {
			t.Fatal(err)
		}
		hidden := []*store.Record{theirs, web, none}
		snapshot := func() map[string]string {
			out := map[string]string{}
			for _, rec := range hidden {
				out[rec.ID] = string(e.do(t, request{method: http.MethodGet, path: path + "/" + rec.ID, key: admin}).body)
			}
			return out
		}
		before := snapshot()
		if mine.Fields["source"] != "Vendor XYZ" {
			t.Fatalf("vendor's record not stamped: %v", mine.Fields)
		}

		stamped := func(t *testing.T, r response) {
			t.Helper()
			if got := r.json(t)["source"]; got != "Vendor XYZ" {
				t.Errorf("source %v, want Vendor XYZ", got)
			}
		}
		req := func(method, p, body string) request {
			rq := request{method: method, path: p, key: vendor}
			if body != "" {
				rq.body = jsonBody(body)
			}
			return rq
		}
		onlyMine := func(t *testing.T, r response) {
			t.Helper()
			for _, d := range decodePage(t, r).Data {
				if d["source"] != "Vendor XYZ" {
					t.Errorf("vendor lists %v", d)
				}
				for _, h := range append(hidden, deletedWeb) {
					if d["id"] == h.ID {
						t.Errorf("vendor lists hidden record %s", h.ID)
					}
				}
			}
		}

		run(t, e, []group{
			{http.StatusOK, []scenario{
				{name: "list", req: req("GET", path, ""), check: func(t *testing.T, r response) {
					onlyMine(t, r)
					if ids := decodePage(t, r).ids(); !slices.Contains(ids, mine.ID) {
						t.Errorf("vendor does not list its record: %v", ids)
					}
				}},
				{name: "list with tombstones", req: req("GET", path+"?include_deleted=true", ""), check: onlyMine},
				{name: "list asking for another source", req: req("GET", path+"?source=Web", ""), check: func(t *testing.T, r response) {
					if p := decodePage(t, r); len(p.Data) != 0 {
						t.Errorf("vendor lists %v", p.Data)
					}
				}},
				{name: "list by an external id of another record", req: req("GET", path+"?external_id=web-1", ""), check: func(t *testing.T, r response) {
					if p := decodePage(t, r); len(p.Data) != 0 {
						t.Errorf("vendor lists %v", p.Data)
					}
				}},
				{name: "list searching", req: req("GET", path+"?q=e", ""), check: onlyMine},
				{name: "get its own", req: req("GET", path+"/"+mine.ID, ""), check: stamped},
				{name: "update its own", req: req("PATCH", path+"/"+mine.ID, `{"name":"Mine, renamed","source":"Vendor XYZ"}`), check: stamped},
				{name: "upsert updates its own", req: req("PUT", path+"/by-external-id/v-0", `{"name":"Synced"}`), check: stamped},
				{name: "batch create", req: req("POST", path+"/batch", `{"records":[{"name":"A"},{"name":"B","source":"Web"},{"name":"C","source":"Vendor XYZ"}]}`),
					check: func(t *testing.T, r response) {
						b := decodeBatch(t, r)
						if len(b.Results) != 3 || b.Results[0].Status != 201 || b.Results[1].Status != 400 || b.Results[2].Status != 201 {
							t.Fatalf("results %s", clip(r.body))
						}
						for _, i := range []int{0, 2} {
							if b.Results[i].Data["source"] != "Vendor XYZ" {
								t.Errorf("item %d not stamped: %v", i, b.Results[i].Data)
							}
						}
						if !strings.Contains(b.Results[1].Error.Message, "source") {
							t.Errorf("item 1 error %+v", b.Results[1].Error)
						}
					}},
				{name: "batch upsert", req: req("POST", path+"/batch/upsert", `{"records":[{"external_id":"web-1","name":"Taken"},{"external_id":"abc-1","name":"Taken"},{"external_id":"v-2","name":"New"},{"external_id":"gone-1","name":"Reborn"}]}`),
					check: func(t *testing.T, r response) {
						b := decodeBatch(t, r)
						if len(b.Results) != 4 || b.Results[0].Status != 409 || b.Results[1].Status != 409 || b.Results[2].Status != 201 {
							t.Fatalf("results %s", clip(r.body))
						}
						if b.Results[2].Data["source"] != "Vendor XYZ" {
							t.Errorf("new record not stamped: %v", b.Results[2].Data)
						}
						// A deleted record's external id is free again: a
						// new record of the vendor.
						if st := b.Results[3].Status; st != 201 || b.Results[3].Data["source"] != "Vendor XYZ" || b.Results[3].Data["id"] == deletedWeb.ID {
							t.Errorf("gone-1: %+v", b.Results[3])
						}
					}},
			}},
			{http.StatusCreated, []scenario{
				{name: "create is stamped", req: req("POST", path, `{"name":"New lead"}`), check: stamped},
				{name: "create with its own source", req: req("POST", path, `{"name":"New lead","source":"Vendor XYZ"}`), check: stamped},
				{name: "create with a null source", req: req("POST", path, `{"name":"New lead","source":null}`), check: stamped},
				{name: "upsert creates", req: req("PUT", path+"/by-external-id/v-1", `{"name":"Vendor's"}`), check: stamped},
			}},
			{http.StatusBadRequest, []scenario{
				{name: "create with another source", req: req("POST", path, `{"name":"x","source":"Web"}`), msg: []string{"source", "Vendor XYZ"}},
				{name: "update moves it out", req: req("PATCH", path+"/"+mine.ID, `{"source":"Web"}`), msg: []string{"source"}},
				{name: "update clears the source", req: req("PATCH", path+"/"+mine.ID, `{"source":null}`), msg: []string{"source"}},
				{name: "update empties the source", req: req("PATCH", path+"/"+mine.ID, `{"source":""}`), msg: []string{"source"}},
				{name: "upsert moves it out", req: req("PUT", path+"/by-external-id/v-1", `{"source":"Web"}`), msg: []string{"source"}},
			}},
			{http.StatusForbidden, []scenario{
				{name: "contacts", req: req("GET", "/api/v1/contacts", "")},
				{name: "usage", req: req("GET", "/api/v1/usage", "")},
			}},
			{http.StatusNotFound, []scenario{
				{name: "get another vendor's", req: req("GET", path+"/"+theirs.ID, "")},
				{name: "get the web form's", req: req("GET", path+"/"+web.ID, "")},
				{name: "get one without source", req: req("GET", path+"/"+none.ID, "")},
				{name: "get a deleted one", req: req("GET", path+"/"+deletedWeb.ID, "")},
				{name: "update another vendor's", req: req("PATCH", path+"/"+theirs.ID, `{"name":"Hijacked"}`)},
				{name: "update one without source into the filter", req: req("PATCH", path+"/"+none.ID, `{"source":"Vendor XYZ"}`)},
				{name: "delete the web form's", req: req("DELETE", path+"/"+web.ID, "")},
				{name: "delete another vendor's", req: req("DELETE", path+"/"+theirs.ID, "")},
			}},
			{http.StatusConflict, []scenario{
				{name: "upsert onto another vendor's external id", req: req("PUT", path+"/by-external-id/abc-1", `{"name":"Hijacked"}`)},
				{name: "upsert onto the web form's external id", req: req("PUT", path+"/by-external-id/web-1", `{"name":"Hijacked","source":"Vendor XYZ"}`)},
				{name: "create with another record's external id", req: req("POST", path, `{"name":"x","external_id":"none-1"}`)},
			}},
			{http.StatusNoContent, []scenario{
				{name: "delete its own", req: req("DELETE", path+"/"+e.create(vendor, store.Leads, map[string]any{"name": "Doomed"}).ID, "")},
			}},
		})

		t.Run("the other records are untouched", func(t *testing.T) {
			after := snapshot()
			for id, b := range before {
				if after[id] != b {
					t.Errorf("record %s changed:\n%s\nwant\n%s", id, after[id], b)
				}
			}
		})
		t.Run("the other vendor sees none of this vendor's records", func(t *testing.T) {
			r := e.do(t, request{method: http.MethodGet, path: path + "?limit=100&include_deleted=true", key: other})
			for _, d := range decodePage(t, r).Data {
				if d["source"] != "Vendor ABC" && d["deleted"] != true {
					t.Errorf("other vendor lists %v", d)
				}
				if d["id"] == mine.ID {
					t.Error("other vendor lists this vendor's record")
				}
			}
		})
		t.Run("the vendor's records are all stamped", func(t *testing.T) {
			r := e.do(t, request{method: http.MethodGet, path: path + "?limit=100&source=Vendor+XYZ", key: admin})
			n := len(decodePage(t, r).Data)
			all := decodePage(t, e.do(t, request{method: http.MethodGet, path: path + "?limit=100", key: vendor}))
			if len(all.Data) != n || n < 5 {
				t.Errorf("vendor lists %d records, the workspace has %d with its source", len(all.Data), n)
			}
		})
	})
}

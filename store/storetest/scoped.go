package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// listAll lists every record of r the caller sees, with lp's filters.
func listAll(t *testing.T, sc *store.Scoped, r *store.Resource, lp store.ListParams) []*store.Record {
	t.Helper()
	lp.Limit = store.MaxLimit
	page, err := sc.FindRecords(t.Context(), r, lp)
	must(t, err, "FindRecords")
	if page.Pagination.HasMore {
		t.Fatalf("more than %d records", store.MaxLimit)
	}
	return page.Data
}

// wantField fails the test unless err is a bad_request (or the given code)
// naming field.
func wantField(t *testing.T, err error, code, field, what string) {
	t.Helper()
	var e *store.Error
	if !errors.As(err, &e) || e.Code != code || e.Field != field {
		t.Errorf("%s: %v, want %s naming field %q", what, err, code, field)
	}
}

func (s *suite) serviceWrites(t *testing.T) {
	s.test(t, "UpdateRecord", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a, bb := e.all(t, e.wa), e.all(t, e.wb)
		acc, err := a.CreateRecord(t.Context(), store.Accounts, map[string]any{"name": "Acme", "industry": "Software",
			"website": "https://acme.example", "phone": "123", "country": "DE"})
		must(t, err, "CreateRecord")
		e.clock.Add(time.Minute)
		// Present fields are set, null and "" clear, absent fields stay;
		// server fields in the body are ignored.
		got, err := a.UpdateRecord(t.Context(), store.Accounts, acc.ID, map[string]any{"industry": "  Hardware ",
			"website": nil, "phone": "", "id": store.NewID(), "created_at": "2000-01-01T00:00:00Z", "workspace_id": e.wb.ID})
		must(t, err, "UpdateRecord")
		wantFields(t, got.Fields, map[string]any{"name": "Acme", "industry": "Hardware", "country": "DE"})
		if got.ID != acc.ID || got.WorkspaceID != e.wa.ID || got.CreatedVia != acc.CreatedVia || got.APIKeyID != acc.APIKeyID {
			t.Errorf("updated record = {id %q ws %q via %q key %q}, want those of %+v", got.ID, got.WorkspaceID, got.CreatedVia, got.APIKeyID, acc)
		}
		wantTime(t, "created_at", got.CreatedAt, acc.CreatedAt)
		wantTime(t, "updated_at", got.UpdatedAt, e.clock.Now())
		stored, err := a.FindRecordByID(t.Context(), store.Accounts, acc.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, stored, got)

		// Without the clock moving, updated_at still advances.
		again, err := a.UpdateRecord(t.Context(), store.Accounts, acc.ID, map[string]any{"country": "AT"})
		must(t, err, "UpdateRecord")
		wantTime(t, "updated_at of a second update in the same millisecond", again.UpdatedAt, got.UpdatedAt.Add(time.Millisecond))

		bad := []struct {
			in    map[string]any
			field string
		}{
			{map[string]any{"name": nil}, "name"},
			{map[string]any{"name": "  "}, "name"},
			{map[string]any{"nickname": "x"}, "nickname"},
			{map[string]any{"name": 12.0}, "name"},
			{map[string]any{"email": "not an email"}, "email"},
			{map[string]any{"name": map[string]any{"$set": "x"}}, "name"},
			{map[string]any{"$set": map[string]any{"name": "x"}}, "$set"},
			{nil, ""},
		}
		for _, c := range bad {
			_, err := a.UpdateRecord(t.Context(), store.Accounts, acc.ID, c.in)
			wantField(t, err, store.EBADREQUEST, c.field, fmt.Sprintf("UpdateRecord(%v)", c.in))
		}
		stored, err = a.FindRecordByID(t.Context(), store.Accounts, acc.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, stored, again)

		// Unknown, malformed and foreign ids are not found, all alike.
		_, errUnknown := a.UpdateRecord(t.Context(), store.Accounts, store.NewID(), map[string]any{"name": "x"})
		_, errForeign := bb.UpdateRecord(t.Context(), store.Accounts, acc.ID, map[string]any{"name": "x"})
		_, errMalformed := a.UpdateRecord(t.Context(), store.Accounts, `{"$gt":""}`, map[string]any{"name": "x"})
		u, f := wantCode(t, errUnknown, store.ENOTFOUND), wantCode(t, errForeign, store.ENOTFOUND)
		wantCode(t, errMalformed, store.ENOTFOUND)
		if u.Message != f.Message {
			t.Errorf("another workspace's record answers %q, an unknown id %q", f.Message, u.Message)
		}
		stored, err = a.FindRecordByID(t.Context(), store.Accounts, acc.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, stored, again)

		// The merged record must be complete: a contact keeps a name.
		c, err := a.CreateRecord(t.Context(), store.Contacts, map[string]any{"first_name": "Ada"})
		must(t, err, "CreateRecord")
		_, err = a.UpdateRecord(t.Context(), store.Contacts, c.ID, map[string]any{"first_name": nil})
		wantField(t, err, store.EBADREQUEST, "first_name", "clearing a contact's only name")
		got, err = a.UpdateRecord(t.Context(), store.Contacts, c.ID, map[string]any{"first_name": nil, "last_name": "Lovelace"})
		must(t, err, "UpdateRecord swapping names")
		wantFields(t, got.Fields, map[string]any{"last_name": "Lovelace"})

		// References are checked like on create.
		own, err := a.CreateRecord(t.Context(), store.Accounts, map[string]any{"name": "Own"})
		must(t, err, "CreateRecord")
		foreign, err := bb.CreateRecord(t.Context(), store.Accounts, map[string]any{"name": "Foreign"})
		must(t, err, "CreateRecord")
		deal, err := a.CreateRecord(t.Context(), store.Deals, map[string]any{"name": "D", "currency": "eur"})
		must(t, err, "CreateRecord")
		_, err = a.UpdateRecord(t.Context(), store.Deals, deal.ID, map[string]any{"account_id": foreign.ID})
		wantField(t, err, store.EBADREQUEST, "account_id", "a reference to another workspace's account")
		got, err = a.UpdateRecord(t.Context(), store.Deals, deal.ID, map[string]any{"account_id": own.ID, "currency": "jpy", "value": 12.5})
		must(t, err, "UpdateRecord")
		wantFields(t, got.Fields, map[string]any{"name": "D", "currency": "JPY", "value": 12.5, "account_id": own.ID})
		got, err = a.UpdateRecord(t.Context(), store.Deals, deal.ID, map[string]any{"account_id": nil, "value": nil})
		must(t, err, "UpdateRecord")
		wantFields(t, got.Fields, map[string]any{"name": "D", "currency": "JPY"})
	})

	s.test(t, "UpdateExternalIDConflict", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a := e.all(t, e.wa)
		first, err := a.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "L1", "external_id": "hub-1"})
		must(t, err, "CreateRecord")
		second, err := a.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "L2", "external_id": "hub-2"})
		must(t, err, "CreateRecord")
		_, err = a.UpdateRecord(t.Context(), store.Leads, second.ID, map[string]any{"external_id": "hub-1"})
		wantField(t, err, store.ECONFLICT, store.ExternalIDField, "UpdateRecord to a taken external id")
		for _, want := range []*store.Record{first, second} {
			got, err := a.FindRecordByID(t.Context(), store.Leads, want.ID)
			must(t, err, "FindRecordByID")
			wantRecord(t, got, want)
		}
		_, err = a.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "L3", "external_id": "hub-2"})
		wantField(t, err, store.ECONFLICT, store.ExternalIDField, "CreateRecord with a taken external id")
	})

	s.test(t, "DeleteRecord", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a, bb := e.all(t, e.wa), e.all(t, e.wb)
		acc, err := a.CreateRecord(t.Context(), store.Accounts, map[string]any{"name": "Acme", "external_id": "acme"})
		must(t, err, "CreateRecord")
		refs := []struct {
			r  *store.Resource
			in map[string]any
		}{
			{store.Deals, map[string]any{"name": "D", "account_id": acc.ID}},
			{store.Contacts, map[string]any{"first_name": "C", "account_id": acc.ID}},
			{store.Notes, map[string]any{"content": "N", "related_account_id": acc.ID}},
		}
		var referrers []*store.Record
		for _, ref := range refs {
			rec, err := a.CreateRecord(t.Context(), ref.r, ref.in)
			must(t, err, "CreateRecord")
			referrers = append(referrers, rec)
		}
		// Refused while live records refer to it; the message says which.
		for i, ref := range refs {
			err := a.DeleteRecord(t.Context(), store.Accounts, acc.ID)
			got := wantCode(t, err, store.ECONFLICT)
			for _, still := range refs[i:] {
				if !strings.Contains(got.Message, still.r.Name) {
					t.Errorf("conflict message %q does not name %s", got.Message, still.r.Name)
				}
			}
			if _, err := a.FindRecordByID(t.Context(), store.Accounts, acc.ID); err != nil {
				t.Fatalf("the account is gone after a refused delete: %v", err)
			}
			must(t, a.DeleteRecord(t.Context(), ref.r, referrers[i].ID), "DeleteRecord(referrer)")
		}

		// Another workspace cannot delete it.
		wantCode(t, bb.DeleteRecord(t.Context(), store.Accounts, acc.ID), store.ENOTFOUND)
		for _, id := range []string{store.NewID(), "x", `{"$ne":null}`} {
			wantCode(t, a.DeleteRecord(t.Context(), store.Accounts, id), store.ENOTFOUND)
		}

		e.clock.Add(time.Minute)
		must(t, a.DeleteRecord(t.Context(), store.Accounts, acc.ID), "DeleteRecord")
		_, err = a.FindRecordByID(t.Context(), store.Accounts, acc.ID)
		wantCode(t, err, store.ENOTFOUND)
		wantCode(t, a.DeleteRecord(t.Context(), store.Accounts, acc.ID), store.ENOTFOUND)
		_, err = a.UpdateRecord(t.Context(), store.Accounts, acc.ID, map[string]any{"name": "Back"})
		wantCode(t, err, store.ENOTFOUND)
		if live := listAll(t, a, store.Accounts, store.ListParams{}); len(live) != 0 {
			t.Errorf("list shows %d accounts after the delete", len(live))
		}
		// Nothing may refer to a deleted record.
		_, err = a.CreateRecord(t.Context(), store.Deals, map[string]any{"name": "D2", "account_id": acc.ID})
		wantField(t, err, store.EBADREQUEST, "account_id", "a reference to a deleted account")

		// The tombstone: id, deletion time, external id.
		tombs := listAll(t, a, store.Accounts, store.ListParams{IncludeDeleted: true})
		if len(tombs) != 1 || tombs[0].ID != acc.ID || tombs[0].DeletedAt == nil {
			t.Fatalf("list with include_deleted = %+v, want the tombstone of %s", tombs, acc.ID)
		}
		wantTimePtr(t, "deleted_at", tombs[0].DeletedAt, ptr(e.clock.Now()))
		wantTime(t, "updated_at of the tombstone", tombs[0].UpdatedAt, e.clock.Now())
		js, err := json.Marshal(tombs[0])
		must(t, err, "json.Marshal")
		var m map[string]any
		must(t, json.Unmarshal(js, &m), "json.Unmarshal")
		if m["deleted"] != true || m["id"] != acc.ID || m["external_id"] != "acme" || m["name"] != nil {
			t.Errorf("tombstone JSON = %s", js)
		}
		// Its external id is free again.
		again, err := a.CreateRecord(t.Context(), store.Accounts, map[string]any{"name": "Acme again", "external_id": "acme"})
		must(t, err, "CreateRecord with a deleted record's external id")
		if again.ID == acc.ID {
			t.Error("the new record reuses the deleted record's id")
		}
		if b2 := listAll(t, bb, store.Accounts, store.ListParams{IncludeDeleted: true}); len(b2) != 0 {
			t.Errorf("workspace B sees %d accounts of A", len(b2))
		}
	})

	s.test(t, "UpsertRecord", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a, bb := e.all(t, e.wa), e.all(t, e.wb)
		rec, created, err := a.UpsertRecord(t.Context(), store.Accounts, "  crm-1 ", map[string]any{"name": "Acme", "industry": "Software"})
		must(t, err, "UpsertRecord")
		if !created {
			t.Error("the first upsert did not report a created record")
		}
		wantFields(t, rec.Fields, map[string]any{"name": "Acme", "industry": "Software", "external_id": "crm-1"})
		if rec.APIKeyID != a.Principal().KeyID || rec.CreatedVia != store.CreatedViaAPI {
			t.Errorf("upserted record: api_key_id %q, created_via %q", rec.APIKeyID, rec.CreatedVia)
		}

		e.clock.Add(time.Second)
		upd, created, err := a.UpsertRecord(t.Context(), store.Accounts, "crm-1", map[string]any{"industry": "Hardware", "external_id": "crm-1"})
		must(t, err, "UpsertRecord")
		if created || upd.ID != rec.ID {
			t.Errorf("second upsert: created %v, id %s; want an update of %s", created, upd.ID, rec.ID)
		}
		wantFields(t, upd.Fields, map[string]any{"name": "Acme", "industry": "Hardware", "external_id": "crm-1"})
		wantTime(t, "created_at", upd.CreatedAt, rec.CreatedAt)
		wantTime(t, "updated_at", upd.UpdatedAt, e.clock.Now())
		got, err := a.FindRecordByID(t.Context(), store.Accounts, rec.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, got, upd)

		bad := []struct {
			ext   string
			in    map[string]any
			field string
		}{
			{"crm-1", map[string]any{"external_id": "crm-2"}, "external_id"},
			{"crm-1", map[string]any{"external_id": 1.0}, "external_id"},
			{"", map[string]any{"name": "x"}, "external_id"},
			{"   ", map[string]any{"name": "x"}, "external_id"},
			{strings.Repeat("x", 256), map[string]any{"name": "x"}, "external_id"},
			{"crm-1", nil, ""},
			{"crm-1", map[string]any{"name": nil}, "name"},
			{"crm-new", map[string]any{"industry": "no name"}, "name"},
			{"crm-1", map[string]any{"bogus": 1.0}, "bogus"},
		}
		for _, c := range bad {
			_, _, err := a.UpsertRecord(t.Context(), store.Accounts, c.ext, c.in)
			wantField(t, err, store.EBADREQUEST, c.field, fmt.Sprintf("UpsertRecord(%q, %v)", c.ext, c.in))
		}
		if n := len(listAll(t, a, store.Accounts, store.ListParams{})); n != 1 {
			t.Errorf("%d accounts after bad upserts, want 1", n)
		}

		// The same external id in another workspace is another record.
		other, created, err := bb.UpsertRecord(t.Context(), store.Accounts, "crm-1", map[string]any{"name": "B's"})
		must(t, err, "UpsertRecord in B")
		if !created || other.ID == rec.ID || other.WorkspaceID != e.wb.ID {
			t.Errorf("upsert in B: created %v, id %s, workspace %s", created, other.ID, other.WorkspaceID)
		}
		got, err = a.FindRecordByID(t.Context(), store.Accounts, rec.ID)
		must(t, err, "FindRecordByID")
		wantRecord(t, got, upd)

		// After a delete, an upsert creates a new record.
		must(t, a.DeleteRecord(t.Context(), store.Accounts, rec.ID), "DeleteRecord")
		fresh, created, err := a.UpsertRecord(t.Context(), store.Accounts, "crm-1", map[string]any{"name": "Acme 2"})
		must(t, err, "UpsertRecord after delete")
		if !created || fresh.ID == rec.ID {
			t.Errorf("upsert after delete: created %v, id %s; want a new record", created, fresh.ID)
		}
		// References are checked on both paths.
		deal, created, err := a.UpsertRecord(t.Context(), store.Deals, "d-1", map[string]any{"name": "D", "account_id": fresh.ID})
		must(t, err, "UpsertRecord(deal)")
		if !created || deal.Fields["account_id"] != fresh.ID {
			t.Errorf("deal upsert: created %v, fields %v", created, deal.Fields)
		}
		_, _, err = a.UpsertRecord(t.Context(), store.Deals, "d-1", map[string]any{"account_id": other.ID})
		wantField(t, err, store.EBADREQUEST, "account_id", "upsert updating a reference to another workspace")
		_, _, err = a.UpsertRecord(t.Context(), store.Deals, "d-2", map[string]any{"name": "D", "account_id": other.ID})
		wantField(t, err, store.EBADREQUEST, "account_id", "upsert creating a reference to another workspace")
	})

	s.test(t, "UpsertConcurrent", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a := e.all(t, e.wa)
		const workers = 20
		var wg sync.WaitGroup
		start := make(chan struct{})
		type result struct {
			id      string
			created bool
			err     error
		}
		results := make(chan result, workers)
		for i := range workers {
			wg.Go(func() {
				<-start
				rec, created, err := a.UpsertRecord(t.Context(), store.Contacts, "ext-contact",
					map[string]any{"first_name": "Ada", "title": fmt.Sprint("v", i)})
				res := result{created: created, err: err}
				if rec != nil {
					res.id = rec.ID
				}
				results <- res
			})
		}
		close(start)
		wg.Wait()
		close(results)
		ids := map[string]bool{}
		created := 0
		for r := range results {
			if r.err != nil {
				t.Errorf("UpsertRecord: %v", r.err)
				continue
			}
			ids[r.id] = true
			if r.created {
				created++
			}
		}
		if len(ids) != 1 || created != 1 {
			t.Errorf("%d concurrent upserts returned %d distinct records, %d created; want 1 and 1", workers, len(ids), created)
		}
		all := listAll(t, a, store.Contacts, store.ListParams{IncludeDeleted: true})
		if len(all) != 1 || !ids[all[0].ID] {
			t.Errorf("%d contacts stored after concurrent upserts of one external id, want 1", len(all))
		}
	})

	s.test(t, "Batches", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a, bb := e.all(t, e.wa), e.all(t, e.wb)
		results, err := a.CreateRecords(t.Context(), store.Accounts, []map[string]any{
			{"name": "A"},
			{"industry": "no name"},
			nil,
			{"name": "B", "external_id": "x"},
			{"name": "C", "external_id": "x"},
			{"name": "D", "bogus": true},
		})
		must(t, err, "CreateRecords")
		if len(results) != 6 {
			t.Fatalf("CreateRecords returned %d results for 6 items", len(results))
		}
		want := []struct {
			ok    bool
			code  string
			field string
		}{{true, "", ""}, {false, store.EBADREQUEST, "name"}, {false, store.EBADREQUEST, ""},
			{true, "", ""}, {false, store.ECONFLICT, "external_id"}, {false, store.EBADREQUEST, "bogus"}}
		var created []string
		for i, w := range want {
			r := results[i]
			if r.Index != i {
				t.Errorf("result %d has index %d", i, r.Index)
			}
			if w.ok {
				if r.Err != nil || r.Record == nil || !r.Created {
					t.Errorf("item %d: %+v, want a created record", i, r)
				} else {
					created = append(created, r.Record.ID)
				}
				continue
			}
			if r.Record != nil || r.Created {
				t.Errorf("item %d: a record despite the error %v", i, r.Err)
			}
			wantField(t, r.Err, w.code, w.field, fmt.Sprintf("item %d", i))
		}
		slices.Reverse(created)
		wantIDs(t, "accounts after the batch", recordIDs(listAll(t, a, store.Accounts, store.ListParams{})), created)

		for _, n := range []int{0, store.MaxBatch + 1} {
			in := make([]map[string]any, n)
			for i := range in {
				in[i] = map[string]any{"content": "n"}
			}
			_, err := a.CreateRecords(t.Context(), store.Notes, in)
			wantField(t, err, store.EBADREQUEST, "records", fmt.Sprintf("CreateRecords of %d", n))
			_, err = a.UpsertRecords(t.Context(), store.Notes, in)
			wantField(t, err, store.EBADREQUEST, "records", fmt.Sprintf("UpsertRecords of %d", n))
		}
		if n := len(listAll(t, a, store.Notes, store.ListParams{})); n != 0 {
			t.Errorf("%d notes after refused batches", n)
		}
		full := make([]map[string]any, store.MaxBatch)
		for i := range full {
			full[i] = map[string]any{"content": fmt.Sprint("note ", i)}
		}
		results, err = a.CreateRecords(t.Context(), store.Notes, full)
		must(t, err, "CreateRecords of MaxBatch")
		for _, r := range results {
			if r.Err != nil {
				t.Errorf("item %d: %v", r.Index, r.Err)
			}
		}
		if n := len(listAll(t, a, store.Notes, store.ListParams{})); n != store.MaxBatch {
			t.Errorf("%d notes after a batch of %d", n, store.MaxBatch)
		}

		results, err = a.UpsertRecords(t.Context(), store.Accounts, []map[string]any{
			{"external_id": "u1", "name": "U1"},
			{"name": "no external id"},
			{"external_id": "u1", "industry": "I"},
			{"external_id": "u2"},
			{"external_id": "x", "name": "B2"},
			{"external_id": 12.0, "name": "bad"},
		})
		must(t, err, "UpsertRecords")
		if len(results) != 6 {
			t.Fatalf("UpsertRecords returned %d results for 6 items", len(results))
		}
		if r := results[0]; r.Err != nil || !r.Created {
			t.Errorf("item 0: %+v, want created", r)
		}
		wantField(t, results[1].Err, store.EBADREQUEST, "external_id", "item 1")
		if r := results[2]; r.Err != nil || r.Created || results[0].Record == nil || r.Record.ID != results[0].Record.ID {
			t.Errorf("item 2: %+v, want an update of item 0's record", r)
		} else {
			wantFields(t, r.Record.Fields, map[string]any{"name": "U1", "industry": "I", "external_id": "u1"})
		}
		wantField(t, results[3].Err, store.EBADREQUEST, "name", "item 3")
		if r := results[4]; r.Err != nil || r.Created || r.Record.Fields["name"] != "B2" {
			t.Errorf("item 4: %+v, want an update of B", r)
		}
		wantField(t, results[5].Err, store.EBADREQUEST, "external_id", "item 5")
		for i, r := range results {
			if r.Index != i {
				t.Errorf("result %d has index %d", i, r.Index)
			}
		}
		// Batches never reach into another workspace.
		res, err := bb.UpsertRecords(t.Context(), store.Accounts, []map[string]any{{"external_id": "u1", "name": "B's"}})
		must(t, err, "UpsertRecords in B")
		if !res[0].Created {
			t.Errorf("upsert in B of A's external id: %+v, want a new record", res[0])
		}
		got, err := a.FindRecordByID(t.Context(), store.Accounts, results[0].Record.ID)
		must(t, err, "FindRecordByID")
		if got.Fields["name"] != "U1" {
			t.Errorf("A's record changed by B's upsert: %v", got.Fields)
		}
	})

	s.test(t, "Idempotent", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b, store.WithIdempotencyTTL(time.Hour))
		a, bb := e.all(t, e.wa), e.all(t, e.wb)
		var runs atomic.Int64
		respond := func(status int, body string) func(context.Context) (store.IdempotentResponse, error) {
			return func(context.Context) (store.IdempotentResponse, error) {
				runs.Add(1)
				return store.IdempotentResponse{Status: status, Body: []byte(body)}, nil
			}
		}
		call := func(sc *store.Scoped, key, fp string, fn func(context.Context) (store.IdempotentResponse, error)) (store.IdempotentResponse, bool, error) {
			return sc.Idempotent(t.Context(), key, fp, fn)
		}
		check := func(what string, resp store.IdempotentResponse, replayed bool, err error, status int, body string, wantReplayed bool, wantRuns int64) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if resp.Status != status || string(resp.Body) != body || replayed != wantReplayed {
				t.Errorf("%s: %d %q replayed %v, want %d %q replayed %v", what, resp.Status, resp.Body, replayed, status, body, wantReplayed)
			}
			if runs.Load() != wantRuns {
				t.Errorf("%s: fn ran %d times in all, want %d", what, runs.Load(), wantRuns)
			}
		}

		resp, replayed, err := call(a, "k1", "POST /accounts {a}", respond(201, `{"id":"1"}`))
		check("first call", resp, replayed, err, 201, `{"id":"1"}`, false, 1)
		resp, replayed, err = call(a, "k1", "POST /accounts {a}", respond(201, `{"id":"2"}`))
		check("repeated call", resp, replayed, err, 201, `{"id":"1"}`, true, 1)
		_, _, err = call(a, "k1", "POST /accounts {b}", respond(201, `{"id":"3"}`))
		wantCode(t, err, store.EIDEMPOTENCYREUSED)
		// The key is the workspace's own.
		resp, replayed, err = call(bb, "k1", "POST /accounts {b}", respond(201, `{"id":"b"}`))
		check("same key in another workspace", resp, replayed, err, 201, `{"id":"b"}`, false, 2)

		for _, key := range []string{"", strings.Repeat("k", 256), "a\nb", "tab\t", "ключ", "\x7f"} {
			_, _, err := call(a, key, "fp", respond(200, "{}"))
			wantField(t, err, store.EBADREQUEST, "Idempotency-Key", fmt.Sprintf("key %q", key))
		}
		_, _, err = call(a, strings.Repeat("k", 255), "fp", respond(200, "{}"))
		must(t, err, "a key of 255 characters")
		_, _, err = call(e.svc.Scoped(store.Principal{}), "k9", "fp", respond(200, "{}"))
		wantCode(t, err, store.EUNAUTHORIZED)
		if runs.Load() != 3 {
			t.Errorf("fn ran %d times, want 3", runs.Load())
		}
		runs.Store(0)

		// Errors and 5xx responses are forgotten; 4xx responses are kept.
		boom := errors.New("backend down")
		_, _, err = call(a, "k2", "fp2", func(context.Context) (store.IdempotentResponse, error) {
			runs.Add(1)
			return store.IdempotentResponse{}, boom
		})
		if !errors.Is(err, boom) {
			t.Errorf("fn's error: got %v", err)
		}
		resp, replayed, err = call(a, "k2", "fp2", respond(201, "ok"))
		check("retry after an error", resp, replayed, err, 201, "ok", false, 2)
		resp, replayed, err = call(a, "k3", "fp3", respond(503, "unavailable"))
		check("a 503", resp, replayed, err, 503, "unavailable", false, 3)
		resp, replayed, err = call(a, "k3", "fp3", respond(201, "ok"))
		check("retry after a 503", resp, replayed, err, 201, "ok", false, 4)
		resp, replayed, err = call(a, "k4", "fp4", respond(422, `{"error":"bad_request"}`))
		check("a 422", resp, replayed, err, 422, `{"error":"bad_request"}`, false, 5)
		resp, replayed, err = call(a, "k4", "fp4", respond(201, "ok"))
		check("retry after a 422", resp, replayed, err, 422, `{"error":"bad_request"}`, true, 5)

		// A key is remembered for the TTL, then free for any request.
		e.clock.Add(time.Hour - time.Millisecond)
		resp, replayed, err = call(a, "k1", "POST /accounts {a}", respond(201, "new"))
		check("just before expiry", resp, replayed, err, 201, `{"id":"1"}`, true, 5)
		e.clock.Add(time.Millisecond)
		resp, replayed, err = call(a, "k1", "POST /accounts {other}", respond(201, "new"))
		check("after expiry", resp, replayed, err, 201, "new", false, 6)

		// While the first request runs, the key is in use.
		started, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, _, err := call(a, "k5", "fp5", func(context.Context) (store.IdempotentResponse, error) {
				runs.Add(1)
				close(started)
				<-release
				return store.IdempotentResponse{Status: 200, Body: []byte("slow")}, nil
			})
			done <- err
		}()
		select {
		case <-started:
		case <-time.After(30 * time.Second):
			t.Fatal("the first request did not start")
		}
		_, _, err = call(a, "k5", "fp5", respond(200, "fast"))
		wantCode(t, err, store.EIDEMPOTENCYINUSE)
		_, _, err = call(a, "k5", "other", respond(200, "fast"))
		wantCode(t, err, store.EIDEMPOTENCYREUSED)
		close(release)
		must(t, <-done, "the first request")
		resp, replayed, err = call(a, "k5", "fp5", respond(200, "fast"))
		check("after the first request finished", resp, replayed, err, 200, "slow", true, 7)

		// A request that never finished (its process died) frees the key
		// once its lease of a minute has passed.
		must(t, b.CreateIdempotencyKey(t.Context(), &store.IdempotencyKey{WorkspaceID: e.wa.ID, Key: "k6", Fingerprint: "fp6",
			State: store.IdempotencyInProgress, CreatedAt: e.clock.Now(), ExpiresAt: e.clock.Now().Add(time.Hour)}), "CreateIdempotencyKey")
		_, _, err = call(a, "k6", "fp6", respond(200, "x"))
		wantCode(t, err, store.EIDEMPOTENCYINUSE)
		e.clock.Add(10 * time.Minute)
		resp, replayed, err = call(a, "k6", "fp6", respond(200, "x"))
		check("after an abandoned request", resp, replayed, err, 200, "x", false, 8)
	})

	s.test(t, "IdempotentWrite", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a := e.all(t, e.wa)
		create := func(ctx context.Context) (store.IdempotentResponse, error) {
			rec, err := a.CreateRecord(ctx, store.Deals, map[string]any{"name": "Once"})
			if err != nil {
				return store.IdempotentResponse{}, err
			}
			body, err := json.Marshal(rec)
			return store.IdempotentResponse{Status: 201, Body: body}, err
		}
		first, replayed, err := a.Idempotent(t.Context(), "deal-once", "POST /deals", create)
		must(t, err, "Idempotent")
		second, replayed2, err := a.Idempotent(t.Context(), "deal-once", "POST /deals", create)
		must(t, err, "Idempotent again")
		if replayed || !replayed2 || string(first.Body) != string(second.Body) || second.Status != 201 {
			t.Errorf("replay = %d %s (replayed %v), want the first response %s", second.Status, second.Body, replayed2, first.Body)
		}
		if n := len(listAll(t, a, store.Deals, store.ListParams{})); n != 1 {
			t.Errorf("%d deals after a repeated request, want 1", n)
		}
		// A failed write is not remembered: the retry writes.
		fail := func(ctx context.Context) (store.IdempotentResponse, error) {
			_, err := a.CreateRecord(ctx, store.Deals, map[string]any{"value": 1.0})
			return store.IdempotentResponse{}, err
		}
		_, _, err = a.Idempotent(t.Context(), "deal-twice", "POST /deals 2", fail)
		wantCode(t, err, store.EBADREQUEST)
		_, replayed, err = a.Idempotent(t.Context(), "deal-twice", "POST /deals 2", create)
		must(t, err, "Idempotent after a failure")
		if replayed {
			t.Error("a failed request's key replayed")
		}
		if n := len(listAll(t, a, store.Deals, store.ListParams{})); n != 2 {
			t.Errorf("%d deals, want 2", n)
		}
	})

	s.test(t, "IdempotentConcurrent", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a := e.all(t, e.wa)
		const callers = 50
		var runs atomic.Int64
		fn := func(ctx context.Context) (store.IdempotentResponse, error) {
			runs.Add(1)
			rec, err := a.CreateRecord(ctx, store.Notes, map[string]any{"content": "once"})
			if err != nil {
				return store.IdempotentResponse{}, err
			}
			return store.IdempotentResponse{Status: 201, Body: []byte(rec.ID)}, nil
		}
		type result struct {
			resp     store.IdempotentResponse
			replayed bool
			err      error
		}
		results := make(chan result, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				<-start
				resp, replayed, err := a.Idempotent(t.Context(), "one-key", "POST /notes once", fn)
				results <- result{resp, replayed, err}
			})
		}
		close(start)
		wg.Wait()
		close(results)
		if runs.Load() != 1 {
			t.Errorf("fn ran %d times for %d concurrent calls with one key, want once", runs.Load(), callers)
		}
		notes := listAll(t, a, store.Notes, store.ListParams{})
		if len(notes) != 1 {
			t.Fatalf("%d notes after %d concurrent calls with one key, want 1", len(notes), callers)
		}
		original := 0
		for r := range results {
			switch {
			case r.err == nil:
				if string(r.resp.Body) != notes[0].ID || r.resp.Status != 201 {
					t.Errorf("response %d %q, want 201 %q", r.resp.Status, r.resp.Body, notes[0].ID)
				}
				if !r.replayed {
					original++
				}
			case store.ErrorCode(r.err) != store.EIDEMPOTENCYINUSE:
				t.Errorf("concurrent call: %v, want success or idempotency_key_in_use", r.err)
			}
		}
		if original != 1 {
			t.Errorf("%d calls ran the request, want 1", original)
		}
	})

	s.test(t, "PurgeExpired", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b, store.WithIdempotencyTTL(time.Hour))
		a := e.all(t, e.wa)
		old, err := a.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "old"})
		must(t, err, "CreateRecord")
		recent, err := a.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "recent"})
		must(t, err, "CreateRecord")
		live, err := a.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "live"})
		must(t, err, "CreateRecord")
		must(t, a.DeleteRecord(t.Context(), store.Leads, old.ID), "DeleteRecord")
		_, _, err = a.Idempotent(t.Context(), "old key", "fp", func(context.Context) (store.IdempotentResponse, error) {
			return store.IdempotentResponse{Status: 200}, nil
		})
		must(t, err, "Idempotent")
		e.clock.Add(2 * time.Hour)
		must(t, a.DeleteRecord(t.Context(), store.Leads, recent.ID), "DeleteRecord")
		_, _, err = a.Idempotent(t.Context(), "new key", "fp", func(context.Context) (store.IdempotentResponse, error) {
			return store.IdempotentResponse{Status: 200}, nil
		})
		must(t, err, "Idempotent")

		tombs, keys, err := e.svc.PurgeExpired(t.Context(), time.Hour)
		must(t, err, "PurgeExpired")
		if tombs != 1 || keys != 1 {
			t.Errorf("PurgeExpired removed %d tombstones and %d keys, want 1 and 1", tombs, keys)
		}
		all := listAll(t, a, store.Leads, store.ListParams{IncludeDeleted: true})
		wantIDs(t, "leads after purge", recordIDs(all), []string{live.ID, recent.ID})
		if _, err := b.FindIdempotencyKey(t.Context(), e.wa.ID, "old key"); store.ErrorCode(err) != store.ENOTFOUND {
			t.Errorf("expired key: %v, want it purged", err)
		}
		if _, err := b.FindIdempotencyKey(t.Context(), e.wa.ID, "new key"); err != nil {
			t.Errorf("current key: %v, want it kept", err)
		}
	})

	s.test(t, "ListCursors", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a := e.all(t, e.wa)
		var recs []*store.Record
		for i := range 8 {
			if i%3 != 0 { // some records share a created_at
				e.clock.Add(time.Second)
			}
			rec, err := a.CreateRecord(t.Context(), store.Leads, map[string]any{"name": fmt.Sprint("lead ", i)})
			must(t, err, "CreateRecord")
			recs = append(recs, rec)
		}
		// Updates reorder by updated_at.
		for _, i := range []int{2, 0, 5} {
			e.clock.Add(time.Second)
			rec, err := a.UpdateRecord(t.Context(), store.Leads, recs[i].ID, map[string]any{"status": "Contacted"})
			must(t, err, "UpdateRecord")
			recs[i] = rec
		}
		for _, sort := range append([]string{""}, store.SortOrders...) {
			by, asc := store.SortCreatedAt, false
			if sort != "" {
				by, asc = strings.TrimPrefix(sort, "-"), !strings.HasPrefix(sort, "-")
			}
			want := expected(recs, store.RecordQuery{Sort: by, Ascending: asc})
			var got []string
			lp := store.ListParams{Limit: 3, Sort: sort}
			for page := 0; ; page++ {
				if page > len(recs) {
					t.Fatalf("sort %q: paging did not end", sort)
				}
				p, err := a.FindRecords(t.Context(), store.Leads, lp)
				must(t, err, "FindRecords")
				got = append(got, recordIDs(p.Data)...)
				if p.Pagination.HasMore != (p.Pagination.NextCursor != nil) {
					t.Errorf("sort %q page %d: has_more %v but next_cursor %v", sort, page, p.Pagination.HasMore, p.Pagination.NextCursor)
				}
				if p.Pagination.NextCursor == nil {
					break
				}
				// The cursor carries the order; giving it again is allowed.
				lp = store.ListParams{Limit: 3, Cursor: *p.Pagination.NextCursor}
				if page%2 == 1 {
					lp.Sort = sort
				}
			}
			wantIDs(t, fmt.Sprintf("sort %q by cursor", sort), got, want)
			all := listAll(t, a, store.Leads, store.ListParams{Sort: sort})
			wantIDs(t, fmt.Sprintf("sort %q in one page", sort), recordIDs(all), want)
		}

		first, err := a.FindRecords(t.Context(), store.Leads, store.ListParams{Limit: 2, Sort: "created_at"})
		must(t, err, "FindRecords")
		cur := *first.Pagination.NextCursor
		_, err = a.FindRecords(t.Context(), store.Leads, store.ListParams{Limit: 2, Cursor: cur, Sort: "-created_at"})
		wantField(t, err, store.EBADREQUEST, "sort", "cursor with another sort order")
		_, err = a.FindRecords(t.Context(), store.Leads, store.ListParams{Limit: 2, Cursor: cur, Offset: 2})
		wantField(t, err, store.EBADREQUEST, "offset", "cursor with an offset")
		for _, bad := range []string{"garbage", cur + "x", "eyJzIjoiY3JlYXRlZF9hdCJ9", strings.Repeat("A", 600), `{"$gt":""}`} {
			_, err = a.FindRecords(t.Context(), store.Leads, store.ListParams{Limit: 2, Cursor: bad})
			wantField(t, err, store.EBADREQUEST, "cursor", fmt.Sprintf("cursor %q", bad))
		}

		// Polling oldest first with a cursor sees records created meanwhile.
		e.clock.Add(time.Minute)
		newer, err := a.CreateRecord(t.Context(), store.Leads, map[string]any{"name": "newer"})
		must(t, err, "CreateRecord")
		lp := store.ListParams{Limit: 2, Cursor: cur}
		var rest []string
		for range 10 {
			p, err := a.FindRecords(t.Context(), store.Leads, lp)
			must(t, err, "FindRecords")
			rest = append(rest, recordIDs(p.Data)...)
			if p.Pagination.NextCursor == nil {
				break
			}
			lp.Cursor = *p.Pagination.NextCursor
		}
		all := append(recs, newer)
		wantIDs(t, "polling oldest first", append(recordIDs(first.Data), rest...),
			expected(all, store.RecordQuery{Sort: store.SortCreatedAt, Ascending: true}))
	})

	s.test(t, "ListFilters", func(t *testing.T, b store.Backend) {
		e := newEnv(t, b)
		a := e.all(t, e.wa)
		acc, err := a.CreateRecord(t.Context(), store.Accounts, map[string]any{"name": "Acme Corp", "industry": "Software", "country": "DE"})
		must(t, err, "CreateRecord")
		e.clock.Add(time.Second)
		other, err := a.CreateRecord(t.Context(), store.Accounts, map[string]any{"name": "Globex", "industry": "Software", "country": "US"})
		must(t, err, "CreateRecord")
		var deals []*store.Record
		for i, in := range []map[string]any{
			{"name": "D0", "currency": "eur", "stage": "Won", "account_id": acc.ID},
			{"name": "D1", "currency": "USD", "stage": "Won"},
			{"name": "D2", "currency": "EUR", "stage": "Lost", "account_id": other.ID},
			{"name": "d3 acme", "stage": "Won", "account_id": acc.ID},
		} {
			e.clock.Add(time.Second)
			in["external_id"] = fmt.Sprint("deal-", i)
			rec, err := a.CreateRecord(t.Context(), store.Deals, in)
			must(t, err, "CreateRecord")
			deals = append(deals, rec)
		}
		cases := []struct {
			lp   store.ListParams
			want []*store.Record
		}{
			{store.ListParams{Filters: map[string]string{"currency": "eur"}}, []*store.Record{deals[2], deals[0]}},
			{store.ListParams{Filters: map[string]string{"currency": "USD", "stage": "Won"}}, []*store.Record{deals[3], deals[1]}},
			{store.ListParams{Filters: map[string]string{"account_id": acc.ID}}, []*store.Record{deals[3], deals[0]}},
			{store.ListParams{Filters: map[string]string{"account_id": acc.ID, "stage": "Lost"}}, nil},
			{store.ListParams{Filters: map[string]string{"external_id": "deal-2"}}, []*store.Record{deals[2]}},
			{store.ListParams{Filters: map[string]string{"stage": " Won "}, Sort: "created_at"}, []*store.Record{deals[0], deals[1], deals[3]}},
			{store.ListParams{Q: "ACME"}, []*store.Record{deals[3]}},
			{store.ListParams{Q: "d", Filters: map[string]string{"stage": "Won"}, CreatedAfter: deals[0].CreatedAt}, []*store.Record{deals[3], deals[1]}},
			{store.ListParams{Q: "   "}, []*store.Record{deals[3], deals[2], deals[1], deals[0]}},
			{store.ListParams{CreatedBefore: deals[2].CreatedAt, Sort: "-updated_at"}, []*store.Record{deals[1], deals[0]}},
		}
		for _, c := range cases {
			wantIDs(t, fmt.Sprintf("%+v", c.lp), recordIDs(listAll(t, a, store.Deals, c.lp)), recordIDs(c.want))
		}

		bad := []struct {
			r     *store.Resource
			lp    store.ListParams
			field string
		}{
			{store.Deals, store.ListParams{Filters: map[string]string{"colour": "red"}}, "colour"},
			{store.Deals, store.ListParams{Filters: map[string]string{"value": "10"}}, "value"},
			{store.Deals, store.ListParams{Filters: map[string]string{"$where": "1"}}, "$where"},
			{store.Accounts, store.ListParams{Filters: map[string]string{"website": "x"}}, "website"},
			{store.Deals, store.ListParams{Filters: map[string]string{"account_id": "not-an-id"}}, "account_id"},
			{store.Deals, store.ListParams{Filters: map[string]string{"currency": "EURO"}}, "currency"},
			{store.Deals, store.ListParams{Filters: map[string]string{"stage": "  "}}, "stage"},
			{store.Leads, store.ListParams{Filters: map[string]string{"email": "nope"}}, "email"},
			{store.Activities, store.ListParams{Filters: map[string]string{"type": "Lunch"}}, "type"},
			{store.Deals, store.ListParams{Sort: "name"}, "sort"},
			{store.Deals, store.ListParams{Sort: "-created_at,id"}, "sort"},
			{store.Deals, store.ListParams{Q: strings.Repeat("q", 201)}, "q"},
			{store.Deals, store.ListParams{Q: "a\x00b"}, "q"},
			{store.Deals, store.ListParams{CreatedAfter: at(time.Hour), CreatedBefore: at(time.Hour)}, "created_after"},
			{store.Deals, store.ListParams{UpdatedAfter: at(2 * time.Hour), UpdatedBefore: at(time.Hour)}, "updated_after"},
		}
		for _, c := range bad {
			c.lp.Limit = 10
			_, err := a.FindRecords(t.Context(), c.r, c.lp)
			wantField(t, err, store.EBADREQUEST, c.field, fmt.Sprintf("%s %+v", c.r.Name, c.lp))
			if e, ok := err.(*store.Error); ok && !strings.Contains(e.Message, c.field) {
				t.Errorf("%s %+v: message %q does not name %q", c.r.Name, c.lp, e.Message, c.field)
			}
		}
		// Unknown filters are named in the message along with the known ones.
		_, err = a.FindRecords(t.Context(), store.Deals, store.ListParams{Limit: 10, Filters: map[string]string{"colour": "red"}})
		if e, ok := err.(*store.Error); !ok || !strings.Contains(e.Message, "currency") {
			t.Errorf("unknown filter: %v, want the known filters listed", err)
		}
	})
}

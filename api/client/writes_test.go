package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/api/client"
	"github.com/hustack/hustack/store"
)

// headerRecorder remembers the Idempotency-Key header of every request.
type headerRecorder struct {
	mu   sync.Mutex
	seen []string // "METHOD key" per request; key "-" when absent
}

func (h *headerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	key := "-"
	if vs := r.Header.Values(client.IdempotencyKeyHeader); len(vs) > 0 {
		key = vs[0]
	}
	h.mu.Lock()
	h.seen = append(h.seen, r.Method+" "+key)
	h.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (h *headerRecorder) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.seen
	h.seen = nil
	return out
}

// keyed returns a client for a new key, the key's principal for calling the
// same operations in process, and the recorder of its requests.
func (e *env) keyed(t *testing.T, ws *store.Workspace, name string, scopes ...store.Scope) (*client.Client, *store.Scoped, *headerRecorder) {
	t.Helper()
	_, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: ws.ID, Name: name, Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	rec := &headerRecorder{}
	c, err := client.New(e.url+api.APIPrefix, raw, client.WithHTTPClient(&http.Client{Transport: rec}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.svc.Authenticate(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return c, e.svc.Scoped(p), rec
}

func wantError(t *testing.T, what string, err error, code string, status int, message string) {
	t.Helper()
	var re *client.ResponseError
	if store.ErrorCode(err) != code || !errors.As(err, &re) || re.Status != status ||
		(message != "" && store.ErrorMessage(err) != message) {
		t.Errorf("%s: err = %v; want %s (%d) %q", what, err, code, status, message)
	}
}

func TestUpdateDelete(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c, _, _ := e.keyed(t, e.wsA, "full", store.AllScopes()...)
	other, _, _ := e.keyed(t, e.wsB, "other", store.AllScopes()...)

	acc, err := c.CreateRecord(ctx, store.Accounts, map[string]any{"name": "Acme", "country": "NL", "industry": "Tools"})
	if err != nil {
		t.Fatal(err)
	}
	upd, err := c.UpdateRecord(ctx, store.Accounts, acc.ID, map[string]any{"industry": "Retail", "country": nil})
	if err != nil {
		t.Fatal(err)
	}
	if upd.ID != acc.ID || upd.Fields["name"] != "Acme" || upd.Fields["industry"] != "Retail" || upd.Fields["country"] != nil ||
		!upd.CreatedAt.Equal(acc.CreatedAt) || !upd.UpdatedAt.After(acc.UpdatedAt) || upd.Resource != store.Accounts {
		t.Errorf("updated %+v, created %+v", upd, acc)
	}
	_, err = c.UpdateRecord(ctx, store.Accounts, acc.ID, map[string]any{"name": nil})
	wantError(t, "clearing a required field", err, store.EBADREQUEST, 400, "name: is required and cannot be cleared.")
	_, err = other.UpdateRecord(ctx, store.Accounts, acc.ID, map[string]any{"name": "Mine"})
	wantError(t, "update from another workspace", err, store.ENOTFOUND, 404, "Account not found.")
	wantError(t, "delete from another workspace", other.DeleteRecord(ctx, store.Accounts, acc.ID), store.ENOTFOUND, 404, "Account not found.")
	got, err := c.FindRecordByID(ctx, store.Accounts, acc.ID)
	if err != nil || got.Fields["name"] != "Acme" {
		t.Errorf("after the other workspace's attempts: %+v, %v", got, err)
	}

	deal, err := c.CreateRecord(ctx, store.Deals, map[string]any{"name": "Big", "account_id": acc.ID})
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, "delete a referenced account", c.DeleteRecord(ctx, store.Accounts, acc.ID), store.ECONFLICT, 409, "")
	if err := c.DeleteRecord(ctx, store.Deals, deal.ID); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRecord(ctx, store.Accounts, acc.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.FindRecordByID(ctx, store.Accounts, acc.ID)
	wantError(t, "get after delete", err, store.ENOTFOUND, 404, "")
	wantError(t, "delete twice", c.DeleteRecord(ctx, store.Accounts, acc.ID), store.ENOTFOUND, 404, "")

	page, err := c.FindRecords(ctx, store.Accounts, store.ListParams{Limit: 10})
	if err != nil || len(page.Data) != 0 {
		t.Errorf("list after delete: %+v, %v", page, err)
	}
	page, err = c.FindRecords(ctx, store.Accounts, store.ListParams{Limit: 10, IncludeDeleted: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != acc.ID || page.Data[0].DeletedAt == nil || len(page.Data[0].Fields) != 0 {
		t.Errorf("list with deleted: %+v", page.Data)
	}
}

func TestUpsert(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c, _, _ := e.keyed(t, e.wsA, "full", store.AllScopes()...)
	other, _, _ := e.keyed(t, e.wsB, "other", store.AllScopes()...)

	// Any characters, "/" and "%" included, reach the server intact.
	for _, ext := range []string{"sf-001", "crm/accounts/7", "50% off", "ä ö ü"} {
		t.Run(ext, func(t *testing.T) {
			first, created, err := c.UpsertRecord(ctx, store.Contacts, ext, map[string]any{"first_name": "Ada", "email": "ada@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			if !created || first.Fields[store.ExternalIDField] != ext || first.Fields["first_name"] != "Ada" {
				t.Errorf("first upsert: created %v, %+v", created, first)
			}
			second, created, err := c.UpsertRecord(ctx, store.Contacts, ext, map[string]any{"last_name": "Lovelace", "email": nil})
			if err != nil {
				t.Fatal(err)
			}
			if created || second.ID != first.ID || second.Fields["first_name"] != "Ada" || second.Fields["last_name"] != "Lovelace" ||
				second.Fields["email"] != nil {
				t.Errorf("second upsert: created %v, %+v", created, second)
			}
			theirs, created, err := other.UpsertRecord(ctx, store.Contacts, ext, map[string]any{"first_name": "Eve"})
			if err != nil || !created || theirs.ID == first.ID {
				t.Errorf("upsert of the same external id in workspace B: created %v, %+v, %v", created, theirs, err)
			}
		})
	}
	_, _, err := c.UpsertRecord(ctx, store.Accounts, "no-name", map[string]any{"industry": "Tools"})
	wantError(t, "upsert creating without a required field", err, store.EBADREQUEST, 400, "name: is required.")
	_, _, err = c.UpsertRecord(ctx, store.Accounts, "a", map[string]any{"name": "x", store.ExternalIDField: "b"})
	wantError(t, "upsert with another external id in the body", err, store.EBADREQUEST, 400, "")
}

func TestBatches(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c, _, _ := e.keyed(t, e.wsA, "full", store.AllScopes()...)
	other, _, _ := e.keyed(t, e.wsB, "other", store.AllScopes()...)
	foreign, err := other.CreateRecord(ctx, store.Accounts, map[string]any{"name": "Foreign"})
	if err != nil {
		t.Fatal(err)
	}

	results, err := c.CreateRecords(ctx, store.Notes, []map[string]any{
		{"content": "One"},
		nil,
		{"title": "No content"},
		{"content": "Four", "related_account_id": foreign.ID},
		{"content": "Five", "external_id": "n5"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		created bool
		message string
	}{
		{true, ""},
		{false, "records[1]: must be a JSON object, got null."},
		{false, "content: is required."},
		{false, fmt.Sprintf("related_account_id: no account with id %q in this workspace.", foreign.ID)},
		{true, ""},
	}
	if len(results) != len(want) {
		t.Fatalf("%d results", len(results))
	}
	for i, w := range want {
		r := results[i]
		ok := r.Index == i && r.Created == w.created
		if w.created {
			ok = ok && r.Err == nil && r.Record != nil && store.ValidID(r.Record.ID) && r.Record.Resource == store.Notes
		} else {
			ok = ok && r.Record == nil && store.ErrorCode(r.Err) == store.EBADREQUEST && store.ErrorMessage(r.Err) == w.message
		}
		if !ok {
			t.Errorf("result %d = %+v (err %v), want created %v %q", i, r, r.Err, w.created, w.message)
		}
	}
	page, err := c.FindRecords(ctx, store.Notes, store.ListParams{Limit: 10})
	if err != nil || len(page.Data) != 2 {
		t.Errorf("notes after the batch: %d, %v", len(page.Data), err)
	}

	results, err = c.UpsertRecords(ctx, store.Leads, []map[string]any{
		{"external_id": "a", "name": "A"},
		{"external_id": "b", "name": "B"},
	})
	if err != nil || len(results) != 2 || !results[0].Created || !results[1].Created {
		t.Fatalf("first batch upsert: %+v, %v", results, err)
	}
	leadA := results[0].Record.ID
	results, err = c.UpsertRecords(ctx, store.Leads, []map[string]any{
		{"external_id": "a", "status": "Qualified"},
		{"name": "No external id"},
		{"external_id": "c", "name": "C"},
	})
	if err != nil || len(results) != 3 {
		t.Fatalf("second batch upsert: %+v, %v", results, err)
	}
	if r := results[0]; r.Created || r.Record == nil || r.Record.ID != leadA || r.Record.Fields["status"] != "Qualified" ||
		r.Record.Fields["name"] != "A" {
		t.Errorf("update by batch upsert: %+v", r)
	}
	if r := results[1]; r.Record != nil || store.ErrorMessage(r.Err) != "external_id: is required for an upsert." {
		t.Errorf("batch upsert without external id: %+v", r)
	}
	if r := results[2]; !r.Created || r.Record == nil {
		t.Errorf("batch upsert creating: %+v", r)
	}

	_, err = c.CreateRecords(ctx, store.Notes, nil)
	wantError(t, "empty batch", err, store.EBADREQUEST, 400, "records: must hold 1 to 100 records, got 0.")
	_, err = c.CreateRecords(ctx, store.Notes, make([]map[string]any, store.MaxBatch+1))
	wantError(t, "batch of 101", err, store.EBADREQUEST, 400, "records: must hold 1 to 100 records, got 101.")
	reader, _, _ := e.keyed(t, e.wsA, "reader", store.ReadScope("notes"))
	_, err = reader.CreateRecords(ctx, store.Notes, []map[string]any{{"content": "x"}})
	wantError(t, "batch without the write scope", err, store.EFORBIDDEN, 403, store.ErrMissingScope.Message)
}

// TestListParams: every list parameter reaches the server, which answers
// exactly what the same operation answers in process.
func TestListParams(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c, sc, _ := e.keyed(t, e.wsA, "full", store.AllScopes()...)
	var ids []string
	for i := range 7 {
		rec, err := sc.CreateRecord(ctx, store.Deals, map[string]any{"name": fmt.Sprintf("Deal %d", i),
			"stage": []string{"Won", "Lost"}[i%2], "currency": []string{"EUR", "USD"}[i/4]})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, rec.ID)
		time.Sleep(2 * time.Millisecond) // distinct created_at (millisecond precision)
	}
	if _, err := sc.UpdateRecord(ctx, store.Deals, ids[1], map[string]any{"value": 5.0}); err != nil {
		t.Fatal(err)
	}
	if err := sc.DeleteRecord(ctx, store.Deals, ids[3]); err != nil {
		t.Fatal(err)
	}
	mid, err := sc.FindRecordByID(ctx, store.Deals, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		lp   store.ListParams
	}{
		{"default", store.ListParams{Limit: 3}},
		{"offset", store.ListParams{Limit: 3, Offset: 2}},
		{"oldest first", store.ListParams{Limit: 3, Sort: "created_at"}},
		{"recently updated", store.ListParams{Limit: 2, Sort: "-updated_at"}},
		{"created after", store.ListParams{Limit: 10, Sort: "created_at", CreatedAfter: mid.CreatedAt}},
		{"created before", store.ListParams{Limit: 10, CreatedBefore: mid.CreatedAt}},
		{"updated window", store.ListParams{Limit: 10, UpdatedAfter: mid.UpdatedAt, UpdatedBefore: time.Now().Add(time.Hour)}},
		{"filters", store.ListParams{Limit: 10, Filters: map[string]string{"stage": "Won", "currency": "eur"}}},
		{"q", store.ListParams{Limit: 10, Q: "deal 5"}},
		{"q is text", store.ListParams{Limit: 10, Q: "Deal_%"}},
		{"include deleted", store.ListParams{Limit: 10, IncludeDeleted: true, Sort: "updated_at"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := sc.FindRecords(ctx, store.Deals, tc.lp)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.FindRecords(ctx, store.Deals, tc.lp)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(recordIDs(got.Data), recordIDs(want.Data)) || got.Pagination.HasMore != want.Pagination.HasMore ||
				got.Pagination.Limit != want.Pagination.Limit || got.Pagination.Offset != want.Pagination.Offset ||
				fmt.Sprint(deref(got.Pagination.NextCursor)) != fmt.Sprint(deref(want.Pagination.NextCursor)) {
				t.Errorf("over REST %v %+v; in process %v %+v", recordIDs(got.Data), got.Pagination, recordIDs(want.Data), want.Pagination)
			}
			for i, rec := range got.Data {
				if (rec.DeletedAt == nil) != (want.Data[i].DeletedAt == nil) {
					t.Errorf("record %s: deleted_at %v, in process %v", rec.ID, rec.DeletedAt, want.Data[i].DeletedAt)
				}
			}
		})
	}
	t.Run("no matches", func(t *testing.T) {
		// Checks the cases above are not all alike.
		got, err := c.FindRecords(ctx, store.Deals, store.ListParams{Limit: 10, Filters: map[string]string{"stage": "Open"}})
		if err != nil || len(got.Data) != 0 {
			t.Errorf("stage Open: %+v, %v", got, err)
		}
	})

	// Following next_cursor visits every live deal once, newest first.
	var seen []string
	lp := store.ListParams{Limit: 2}
	for range 10 {
		page, err := c.FindRecords(ctx, store.Deals, lp)
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, recordIDs(page.Data)...)
		if page.Pagination.NextCursor == nil {
			break
		}
		lp.Cursor = *page.Pagination.NextCursor
	}
	live := slices.Delete(slices.Clone(ids), 3, 4)
	slices.Reverse(live)
	if !slices.Equal(seen, live) {
		t.Errorf("cursor walk = %v, want %v", seen, live)
	}

	first, err := sc.FindRecords(ctx, store.Deals, store.ListParams{Limit: 1})
	if err != nil || first.Pagination.NextCursor == nil {
		t.Fatalf("first page: %+v, %v", first, err)
	}
	cursor := *first.Pagination.NextCursor
	for _, tc := range []struct {
		name  string
		lp    store.ListParams
		field string
	}{
		{"bad sort", store.ListParams{Limit: 1, Sort: "name"}, "sort"},
		{"bad cursor", store.ListParams{Limit: 1, Cursor: "nope"}, "cursor"},
		{"cursor and offset", store.ListParams{Limit: 1, Offset: 1, Cursor: cursor}, "offset"},
		{"cursor and another sort", store.ListParams{Limit: 1, Sort: "updated_at", Cursor: cursor}, "sort"},
		{"empty window", store.ListParams{Limit: 1, CreatedAfter: mid.CreatedAt, CreatedBefore: mid.CreatedAt}, "created_after"},
		{"filter value", store.ListParams{Limit: 1, Filters: map[string]string{"account_id": "x"}}, "account_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.FindRecords(ctx, store.Deals, tc.lp)
			_, inProcess := sc.FindRecords(ctx, store.Deals, tc.lp)
			wantError(t, tc.name, err, store.EBADREQUEST, 400, store.ErrorMessage(inProcess))
			if !strings.HasPrefix(store.ErrorMessage(err), tc.field+":") {
				t.Errorf("message %q does not start with %s", store.ErrorMessage(err), tc.field)
			}
		})
	}
	// A filter the resource does not have is an unknown query parameter.
	_, err = c.FindRecords(ctx, store.Deals, store.ListParams{Limit: 1, Filters: map[string]string{"name": "x"}})
	wantError(t, "unknown filter", err, store.EBADREQUEST, 400, "")
	if !strings.Contains(store.ErrorMessage(err), `"name"`) {
		t.Errorf("unknown filter: %q does not name it", store.ErrorMessage(err))
	}
}

func TestIdempotencyKeys(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c, _, rec := e.keyed(t, e.wsA, "full", store.AllScopes()...)
	second, _, _ := e.keyed(t, e.wsA, "second", store.AllScopes()...)

	kctx := client.WithIdempotencyKey(ctx, "create-acme")
	first, err := c.CreateRecord(kctx, store.Accounts, map[string]any{"name": "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.CreateRecord(kctx, store.Accounts, map[string]any{"name": "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("repeated create = %+v, want %+v", again, first)
	}
	page, err := c.FindRecords(kctx, store.Accounts, store.ListParams{Limit: 10})
	if err != nil || len(page.Data) != 1 {
		t.Errorf("accounts after a repeated create: %d, %v", len(page.Data), err)
	}
	if got, want := rec.take(), []string{"POST create-acme", "POST create-acme", "GET -"}; !slices.Equal(got, want) {
		t.Errorf("requests %v, want %v (no key on reads)", got, want)
	}
	_, err = c.CreateRecord(kctx, store.Accounts, map[string]any{"name": "Other"})
	wantError(t, "same key, other body", err, store.EIDEMPOTENCYREUSED, 422, "")
	_, err = second.CreateRecord(kctx, store.Accounts, map[string]any{"name": "Acme"})
	wantError(t, "same key, other API key", err, store.EIDEMPOTENCYREUSED, 422, "")
	_, err = c.CreateRecord(client.WithIdempotencyKey(ctx, ""), store.Accounts, map[string]any{"name": "Empty key"})
	wantError(t, "empty key", err, store.EBADREQUEST, 400, "Idempotency-Key: "+store.IdempotencyKeyRule)

	// Idempotent reports replays, for every kind of write.
	missing := store.NewID()
	for _, tc := range []struct {
		name  string
		write func(ctx context.Context) error
	}{
		{"update", func(ctx context.Context) error {
			_, err := c.UpdateRecord(ctx, store.Accounts, first.ID, map[string]any{"industry": "Tools"})
			return err
		}},
		{"upsert", func(ctx context.Context) error {
			_, _, err := c.UpsertRecord(ctx, store.Leads, "lead-1", map[string]any{"name": "Lead"})
			return err
		}},
		{"batch", func(ctx context.Context) error {
			_, err := c.CreateRecords(ctx, store.Notes, []map[string]any{{"content": "Batch"}})
			return err
		}},
		{"batch upsert", func(ctx context.Context) error {
			_, err := c.UpsertRecords(ctx, store.Notes, []map[string]any{{"content": "Batch", "external_id": "n1"}})
			return err
		}},
		{"not found", func(ctx context.Context) error {
			_, err := c.UpdateRecord(ctx, store.Accounts, missing, map[string]any{"industry": "Tools"})
			return err
		}},
		{"delete", func(ctx context.Context) error { return c.DeleteRecord(ctx, store.Accounts, first.ID) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errs [2]error
			for i := range 2 {
				_, replayed, err := c.Idempotent(ctx, "key "+tc.name, "ignored", func(ctx context.Context) (store.IdempotentResponse, error) {
					errs[i] = tc.write(ctx)
					return store.IdempotentResponse{}, nil
				})
				if err != nil || replayed != (i == 1) {
					t.Errorf("call %d: replayed %v, err %v", i+1, replayed, err)
				}
			}
			if store.ErrorCode(errs[0]) != store.ErrorCode(errs[1]) || (tc.name == "not found") != (store.ErrorCode(errs[0]) == store.ENOTFOUND) {
				t.Errorf("first call %v, replay %v", errs[0], errs[1])
			}
		})
	}
	_, _, err = c.Idempotent(ctx, "bad\nkey", "", func(context.Context) (store.IdempotentResponse, error) {
		t.Error("fn ran with an invalid key")
		return store.IdempotentResponse{}, nil
	})
	if store.ErrorCode(err) != store.EBADREQUEST {
		t.Errorf("invalid key: %v", err)
	}
}

func recordIDs(recs []*store.Record) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

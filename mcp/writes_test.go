package mcp_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// TestWrites runs updates, deletes, upserts, batches, list filters and
// idempotency keys with mcp-go's client and the go-sdk client, over
// Streamable HTTP (tools in process, store.Scoped) and over stdio (tools
// calling the REST API through api/client).
func TestWrites(t *testing.T) {
	e := newEnv(t)
	for _, c := range connectors {
		t.Run(c.name, func(t *testing.T) { writeScenario(t, e, c) })
	}
}

type batch struct {
	Results []struct {
		Index  int    `json:"index"`
		Status int    `json:"status"`
		Data   record `json:"data"`
		Error  *struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"results"`
}

type upserted struct {
	Created bool   `json:"created"`
	Data    record `json:"data"`
}

type cursorPage struct {
	Data       []record `json:"data"`
	Pagination struct {
		HasMore    bool    `json:"has_more"`
		NextCursor *string `json:"next_cursor"`
	} `json:"pagination"`
}

func (p cursorPage) ids() []string {
	var out []string
	for _, r := range p.Data {
		out = append(out, r["id"].(string))
	}
	return out
}

func writeScenario(t *testing.T, e *env, c connector) {
	tag := c.name // keeps names and external ids apart between connectors

	// Workspace B's records, which workspace A can neither change nor delete.
	other := mustConnect(t, c, e, e.keys[keyOther], protoModern)
	var foreign record
	call(t, other, "create_account", map[string]any{"name": "Foreign " + tag, "external_id": "shared " + tag}, &foreign)
	foreignID := foreign["id"].(string)
	_ = other.Close()

	s := mustConnect(t, c, e, e.keys[keyFull], protoModern)

	t.Run("update", func(t *testing.T) {
		var acc, upd record
		call(t, s, "create_account", map[string]any{"name": "Initech " + tag, "country": "US", "industry": "Software"}, &acc)
		call(t, s, "update_account", map[string]any{"id": acc["id"], "industry": "Consulting", "country": nil, "website": ""}, &upd)
		if upd["id"] != acc["id"] || upd["name"] != acc["name"] || upd["industry"] != "Consulting" ||
			upd["country"] != nil || upd["created_at"] != acc["created_at"] || !later(t, upd["updated_at"], acc["updated_at"]) {
			t.Errorf("update_account = %v, created %v", upd, acc)
		}
		var got record
		call(t, s, "get_account", map[string]any{"id": acc["id"]}, &got)
		if !jsonEqualValues(t, got, upd) {
			t.Errorf("get after update = %v, want %v", got, upd)
		}
		// Another workspace's record: not_found, and it stays as it was.
		for tool, args := range map[string]map[string]any{
			"update_account": {"id": foreignID, "name": "Mine now"},
			"delete_account": {"id": foreignID},
		} {
			if code, msg := callError(t, s, tool, args); code != store.ENOTFOUND || msg != "Account not found." {
				t.Errorf("%s of workspace B's account = %s %q", tool, code, msg)
			}
		}
	})

	t.Run("delete", func(t *testing.T) {
		var acc, contact record
		call(t, s, "create_account", map[string]any{"name": "Doomed " + tag, "external_id": "doomed " + tag}, &acc)
		call(t, s, "create_contact", map[string]any{"last_name": "Holds On", "account_id": acc["id"]}, &contact)
		if code, _ := callError(t, s, "delete_account", map[string]any{"id": acc["id"]}); code != store.ECONFLICT {
			t.Errorf("delete_account while a contact refers to it = %s, want conflict", code)
		}
		var del struct {
			ID      string `json:"id"`
			Deleted bool   `json:"deleted"`
		}
		call(t, s, "delete_contact", map[string]any{"id": contact["id"]}, &del)
		if del.ID != contact["id"] || !del.Deleted {
			t.Errorf("delete_contact = %+v", del)
		}
		call(t, s, "delete_account", map[string]any{"id": acc["id"]}, &del)
		if code, _ := callError(t, s, "get_account", map[string]any{"id": acc["id"]}); code != store.ENOTFOUND {
			t.Errorf("get_account after delete = %s", code)
		}
		if code, _ := callError(t, s, "delete_account", map[string]any{"id": acc["id"]}); code != store.ENOTFOUND {
			t.Errorf("delete_account twice = %s", code)
		}
		var p cursorPage
		call(t, s, "list_accounts", map[string]any{"external_id": "doomed " + tag}, &p)
		if len(p.Data) != 0 {
			t.Errorf("list_accounts shows a deleted account: %v", p.Data)
		}
		call(t, s, "list_accounts", map[string]any{"external_id": "doomed " + tag, "include_deleted": true}, &p)
		if len(p.Data) != 1 || p.Data[0]["id"] != acc["id"] || p.Data[0]["deleted"] != true || p.Data[0]["deleted_at"] == nil ||
			p.Data[0]["name"] != nil {
			t.Errorf("list_accounts include_deleted = %v", p.Data)
		}
		// The external id is free again.
		var again upserted
		call(t, s, "upsert_account", map[string]any{"external_id": "doomed " + tag, "name": "Reborn " + tag}, &again)
		if !again.Created || again.Data["id"] == acc["id"] {
			t.Errorf("upsert of a deleted record's external id = %+v", again)
		}
	})

	t.Run("upsert", func(t *testing.T) {
		ext := "crm/42 " + tag // a slash and a space go through the REST path too
		var first, second upserted
		call(t, s, "upsert_contact", map[string]any{"external_id": ext, "first_name": "Ada", "email": "ada@example.com"}, &first)
		if !first.Created || first.Data["external_id"] != ext || first.Data["first_name"] != "Ada" {
			t.Fatalf("first upsert_contact = %+v", first)
		}
		call(t, s, "upsert_contact", map[string]any{"external_id": ext, "last_name": "Lovelace", "email": nil}, &second)
		if second.Created || second.Data["id"] != first.Data["id"] || second.Data["first_name"] != "Ada" ||
			second.Data["last_name"] != "Lovelace" || second.Data["email"] != nil {
			t.Errorf("second upsert_contact = %+v", second)
		}
		var p cursorPage
		call(t, s, "list_contacts", map[string]any{"external_id": ext}, &p)
		if ids := p.ids(); !slices.Equal(ids, []string{first.Data["id"].(string)}) {
			t.Errorf("contacts with external_id %q: %v", ext, ids)
		}
		// Workspace B's external id is its own business.
		var mine upserted
		call(t, s, "upsert_account", map[string]any{"external_id": "shared " + tag, "name": "Ours " + tag}, &mine)
		if !mine.Created || mine.Data["id"] == foreignID {
			t.Errorf("upsert_account of an external id used in workspace B = %+v", mine)
		}
		code, msg := callError(t, s, "upsert_contact", map[string]any{"external_id": ext, "first_name": "Eve", "external_id ": "x"})
		if code != store.EBADREQUEST || !contains(msg, `"external_id "`) {
			t.Errorf("upsert_contact with an unknown field = %s %q", code, msg)
		}
	})

	t.Run("batch", func(t *testing.T) {
		var b batch
		call(t, s, "batch_create_notes", map[string]any{"records": []any{
			map[string]any{"content": "First " + tag},
			map[string]any{"title": "No content"},
			"not an object",
			map[string]any{"content": "Fourth " + tag, "related_account_id": foreignID},
			map[string]any{"content": "Fifth " + tag, "external_id": "note " + tag},
		}}, &b)
		if len(b.Results) != 5 {
			t.Fatalf("batch_create_notes: %d results", len(b.Results))
		}
		want := []struct {
			status  int
			message string
		}{
			{201, ""},
			{400, "content: is required."},
			{400, "records[2]: must be a JSON object, got a string."},
			{400, fmt.Sprintf("related_account_id: no account with id %q in this workspace.", foreignID)},
			{201, ""},
		}
		for i, w := range want {
			got := b.Results[i]
			switch {
			case got.Index != i || got.Status != w.status:
				t.Errorf("result %d: index %d status %d, want status %d", i, got.Index, got.Status, w.status)
			case w.message == "" && (got.Error != nil || !store.ValidID(fmt.Sprint(got.Data["id"]))):
				t.Errorf("result %d: %+v", i, got)
			case w.message != "" && (got.Error == nil || got.Error.Error != store.EBADREQUEST || got.Error.Message != w.message || got.Data != nil):
				t.Errorf("result %d: %+v, want message %q", i, got, w.message)
			}
		}
		var note record
		call(t, s, "get_note", map[string]any{"id": b.Results[4].Data["id"]}, &note)
		if note["content"] != "Fifth "+tag {
			t.Errorf("created note = %v", note)
		}

		call(t, s, "batch_upsert_leads", map[string]any{"records": []any{
			map[string]any{"external_id": "lead-a " + tag, "name": "A", "status": "New"},
			map[string]any{"external_id": "lead-b " + tag, "name": "B"},
			map[string]any{"name": "No external id"},
		}}, &b)
		if len(b.Results) != 3 || b.Results[0].Status != 201 || b.Results[1].Status != 201 || b.Results[2].Status != 400 ||
			b.Results[2].Error == nil || b.Results[2].Error.Message != "external_id: is required for an upsert." {
			t.Fatalf("first batch_upsert_leads = %+v", b.Results)
		}
		leadA := b.Results[0].Data["id"]
		call(t, s, "batch_upsert_leads", map[string]any{"records": []any{
			map[string]any{"external_id": "lead-a " + tag, "status": "Qualified"},
			map[string]any{"external_id": "lead-c " + tag, "name": "C"},
		}}, &b)
		if len(b.Results) != 2 || b.Results[0].Status != 200 || b.Results[0].Data["id"] != leadA ||
			b.Results[0].Data["status"] != "Qualified" || b.Results[0].Data["name"] != "A" || b.Results[1].Status != 201 {
			t.Errorf("second batch_upsert_leads = %+v", b.Results)
		}
		records := make([]any, store.MaxBatch+1)
		for i := range records {
			records[i] = map[string]any{"name": "Too many"}
		}
		code, msg := callError(t, s, "batch_create_accounts", map[string]any{"records": records})
		if code != store.EBADREQUEST || msg != "records: must hold 1 to 100 records, got 101." {
			t.Errorf("batch of 101 = %s %q", code, msg)
		}
	})

	t.Run("list", func(t *testing.T) {
		// Five deals in a stage of their own, created a few milliseconds
		// apart (timestamps have millisecond precision); the third is then
		// updated.
		stage := "Stage " + tag
		var ids []string
		for i := range 5 {
			var d record
			call(t, s, "create_deal", map[string]any{"name": fmt.Sprintf("Widget deal %d %s", i, tag), "stage": stage}, &d)
			ids = append(ids, d["id"].(string))
			time.Sleep(2 * time.Millisecond)
		}
		var d record
		call(t, s, "update_deal", map[string]any{"id": ids[2], "value": 10}, &d)
		call(t, s, "get_deal", map[string]any{"id": ids[1]}, &d)
		createdMid := d["created_at"].(string)

		// Cursor paging, two records a page, newest first: each once.
		var seen []string
		args := map[string]any{"stage": stage, "limit": 2}
		for range 10 {
			var p cursorPage
			call(t, s, "list_deals", args, &p)
			seen = append(seen, p.ids()...)
			if p.Pagination.NextCursor == nil {
				if p.Pagination.HasMore {
					t.Errorf("has_more without next_cursor")
				}
				break
			}
			args = map[string]any{"stage": stage, "limit": 2, "cursor": *p.Pagination.NextCursor}
		}
		if want := reversed(ids); !slices.Equal(seen, want) {
			t.Errorf("cursor pages = %v, want %v", seen, want)
		}
		var p cursorPage
		call(t, s, "list_deals", map[string]any{"stage": stage, "sort": "-updated_at", "limit": 1}, &p)
		if len(p.Data) != 1 || p.Data[0]["id"] != ids[2] {
			t.Errorf("most recently updated = %v, want %s", p.ids(), ids[2])
		}
		call(t, s, "list_deals", map[string]any{"stage": stage, "sort": "created_at", "created_after": createdMid}, &p)
		if want := ids[2:]; !slices.Equal(p.ids(), want) {
			t.Errorf("created after the second, oldest first = %v, want %v", p.ids(), want)
		}
		call(t, s, "list_deals", map[string]any{"stage": stage, "q": "WIDGET DEAL 3"}, &p)
		if !slices.Equal(p.ids(), []string{ids[3]}) {
			t.Errorf("q = %v, want %s", p.ids(), ids[3])
		}
		call(t, s, "list_deals", map[string]any{"stage": stage, "q": "%"}, &p)
		if len(p.Data) != 0 {
			t.Errorf("q %% matched %v: not plain text", p.ids())
		}
	})

	t.Run("idempotency key", func(t *testing.T) {
		key := "create-once " + tag
		args := map[string]any{"name": "Once " + tag, "idempotency_key": key}
		var first, again record
		res := call(t, s, "create_account", args, &first)
		if res.Replayed {
			t.Errorf("first call marked replayed")
		}
		res = call(t, s, "create_account", args, &again)
		if !res.Replayed || !jsonEqualValues(t, again, first) {
			t.Errorf("repeated create_account: replayed %v, %v, want %v", res.Replayed, again, first)
		}
		var p cursorPage
		call(t, s, "list_accounts", map[string]any{"q": "Once " + tag}, &p)
		if len(p.Data) != 1 {
			t.Errorf("%d accounts after a repeated call, want 1", len(p.Data))
		}
		// The same key with other arguments, or for another tool: refused.
		for _, tc := range []struct {
			tool string
			args map[string]any
		}{
			{"create_account", map[string]any{"name": "Twice " + tag, "idempotency_key": key}},
			{"update_account", map[string]any{"id": first["id"], "name": "Once " + tag, "idempotency_key": key}},
		} {
			if code, _ := callError(t, s, tc.tool, tc.args); code != store.EIDEMPOTENCYREUSED {
				t.Errorf("%s with a used key = %s, want %s", tc.tool, code, store.EIDEMPOTENCYREUSED)
			}
		}
		// An error result is kept and replayed too, like a 4xx response.
		missing := store.NewID()
		for i := range 2 {
			res, err := s.CallTool(t.Context(), "update_account", map[string]any{"id": missing, "name": "x", "idempotency_key": "missing " + tag})
			if err != nil {
				t.Fatal(err)
			}
			if code, _ := res.errorBody(t); !res.IsError || code != store.ENOTFOUND || res.Replayed != (i == 1) {
				t.Errorf("update of a missing account, call %d: %+v", i+1, res)
			}
		}
		// Updates and deletes replay as well: the second delete answers
		// what the first did instead of not_found.
		var upd record
		call(t, s, "update_account", map[string]any{"id": first["id"], "industry": "Retail", "idempotency_key": "upd " + tag}, &upd)
		res = call(t, s, "update_account", map[string]any{"id": first["id"], "industry": "Retail", "idempotency_key": "upd " + tag}, &again)
		if !res.Replayed || again["updated_at"] != upd["updated_at"] {
			t.Errorf("repeated update: replayed %v, updated_at %v then %v", res.Replayed, upd["updated_at"], again["updated_at"])
		}
		delArgs := map[string]any{"id": first["id"], "idempotency_key": "del " + tag}
		call(t, s, "delete_account", delArgs, nil)
		if res := call(t, s, "delete_account", delArgs, nil); !res.Replayed {
			t.Errorf("repeated delete not replayed")
		}
		var b batch
		batchArgs := map[string]any{"records": []any{map[string]any{"content": "Batch once " + tag}}, "idempotency_key": "batch " + tag}
		call(t, s, "batch_create_notes", batchArgs, &b)
		noteID := b.Results[0].Data["id"]
		if res := call(t, s, "batch_create_notes", batchArgs, &b); !res.Replayed || b.Results[0].Data["id"] != noteID {
			t.Errorf("repeated batch: replayed %v, note %v then %v", res.Replayed, noteID, b.Results[0].Data["id"])
		}
		// Keys are per workspace: workspace B's identical call is its own.
		_ = s.Close()
		other := mustConnect(t, c, e, e.keys[keyOther], protoModern)
		var theirs record
		if res := call(t, other, "create_account", args, &theirs); res.Replayed || theirs["id"] == first["id"] {
			t.Errorf("workspace B's call with workspace A's key: replayed %v, id %v", res.Replayed, theirs["id"])
		}
		_ = other.Close()
		// So is another API key of the same workspace.
		notes := mustConnect(t, c, e, e.keys[keyNotes], protoModern)
		if code, _ := callError(t, notes, "batch_create_notes", batchArgs); code != store.EIDEMPOTENCYREUSED {
			t.Errorf("another key with the same idempotency key = %s, want %s", code, store.EIDEMPOTENCYREUSED)
		}
		_ = notes.Close()
	})
}

// TestConcurrentIdempotentCalls: many identical calls with one key at once
// create one record; every call answers it, or in_use while the first runs.
func TestConcurrentIdempotentCalls(t *testing.T) {
	e := newEnv(t)
	const n = 20
	for _, c := range connectors[:2] {
		t.Run(c.name, func(t *testing.T) {
			var wg sync.WaitGroup
			ids := make([]string, n)
			codes := make([]string, n)
			sessions := make([]session, n)
			for i := range sessions {
				sessions[i] = mustConnect(t, c, e, e.keys[keyFull], protoModern)
			}
			args := map[string]any{"name": "Concurrent " + c.name, "idempotency_key": "concurrent " + c.name}
			for i, s := range sessions {
				wg.Go(func() {
					res, err := s.CallTool(t.Context(), "create_account", args)
					switch {
					case err != nil:
						codes[i] = err.Error()
					case res.IsError:
						var b struct{ Error string }
						_ = json.Unmarshal([]byte(res.Text), &b)
						codes[i] = b.Error
					default:
						var r record
						_ = json.Unmarshal(res.Structured, &r)
						ids[i], _ = r["id"].(string)
					}
				})
			}
			wg.Wait()
			var created []string
			inUse := 0
			for i := range n {
				switch {
				case ids[i] != "":
					created = append(created, ids[i])
				case codes[i] == store.EIDEMPOTENCYINUSE:
					inUse++
				default:
					t.Errorf("call %d: %s", i, codes[i])
				}
			}
			t.Logf("%d calls answered the record, %d answered %s", len(created), inUse, store.EIDEMPOTENCYINUSE)
			slices.Sort(created)
			if created = slices.Compact(created); len(created) != 1 {
				t.Errorf("records answered: %v, want exactly one", created)
			}
			var p cursorPage
			call(t, sessions[0], "list_accounts", map[string]any{"q": "Concurrent " + c.name}, &p)
			if len(p.Data) != 1 {
				t.Errorf("%d accounts created, want 1", len(p.Data))
			}
		})
	}
}

func later(t *testing.T, a, b any) bool {
	t.Helper()
	ta, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(a))
	tb, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(b))
	if err1 != nil || err2 != nil {
		t.Fatalf("timestamps %v, %v", a, b)
	}
	return ta.After(tb)
}

func jsonEqualValues(t *testing.T, a, b any) bool {
	t.Helper()
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal("cannot encode")
	}
	return jsonEqual(t, x, y)
}

func reversed(s []string) []string {
	out := slices.Clone(s)
	slices.Reverse(out)
	return out
}

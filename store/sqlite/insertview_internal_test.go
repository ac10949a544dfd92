package sqlite

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// TestInsertViewFollowsFields opens a file that also holds the insert view
// of a program whose accounts predate the country field: Open adds the
// view of its own fields, and the record and its event carry the field,
// while the older view stays and still works for the older program.
func TestInsertViewFollowsFields(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "view.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	old := *store.Accounts
	old.Fields = slices.DeleteFunc(slices.Clone(old.Fields), func(f store.Field) bool { return f.Name == "country" })
	name, view, trigger := insertView(&old)
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, s := range []string{view, trigger} {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)
	rec := &store.Record{Resource: store.Accounts, ID: store.NewID(), WorkspaceID: store.NewID(),
		Fields: map[string]any{"name": "Acme", "country": "Österreich"}, CreatedAt: now, UpdatedAt: now, CreatedVia: store.CreatedViaAPI}
	if err := db.InsertRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := db.FindRecordByID(ctx, store.Accounts, rec.WorkspaceID, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fields["country"] != "Österreich" {
		t.Errorf("country = %v after the view was replaced", got.Fields["country"])
	}
	evs, err := db.ClaimEvents(ctx, now, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("%d events, want the created event", len(evs))
	}
	var data map[string]any
	if err := json.Unmarshal(evs[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if evs[0].ID == "" || evs[0].Type != "account.created" || evs[0].WorkspaceID != rec.WorkspaceID ||
		data["id"] != rec.ID || data["country"] != "Österreich" {
		t.Errorf("event = %+v, data %s", evs[0], evs[0].Data)
	}
	// The older program's view was left alone and still inserts.
	if current, _, _ := insertView(store.Accounts); current == name {
		t.Fatalf("the views of two field lists have the same name %s", name)
	}
	oldTable := newTable(&old)
	cols := oldTable.columns + ", " + eventViewColumns
	args := []any{rec.WorkspaceID, store.NewID()}
	for _, f := range old.Fields {
		if f.Name == "name" {
			args = append(args, "Older")
		} else {
			args = append(args, nil)
		}
	}
	args = append(args, now.UnixMilli(), now.UnixMilli(), store.CreatedViaAPI, "", nil, store.NewID(), "account.created", now.UnixMilli(), []byte(`{}`))
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")
	if _, err := raw.Exec("INSERT INTO "+quote(name)+" ("+cols+") VALUES ("+marks+")", args...); err != nil {
		t.Errorf("the older program's view no longer inserts: %v", err)
	}
}

package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hustack/hustack/store/mongo/mongotest"
)

// The production shape's store: with MONGODB_URI set, the same commands and
// server keep everything in MongoDB (the embedded FerretDB of the tests, or
// the server MONGODB_URI names) and nothing in the data directory.
func TestMongoDBStore(t *testing.T) {
	e := newTestEnv(t)
	e["MONGODB_URI"] = mongotest.URI(t)
	e["MONGODB_DATABASE"] = mongotest.DatabaseName()
	db := mongotest.OpenDatabase(t, e["MONGODB_DATABASE"]) // drops the database at the end

	ws := mustJSON[map[string]any](t, e, "workspace", "create", "--json", "--name", "Mongo Co")
	wsID, _ := ws["id"].(string)
	k := mustJSON[map[string]any](t, e, "key", "create", "--json", "--workspace", wsID,
		"--name", "sync", "--scopes", "read:accounts,write:accounts")
	key, _ := k["key"].(string)

	base, stop, _ := startServer(t, e)
	if r := call(t, "POST", base+"/api/v1/accounts", key, `{"name":"Initech","external_id":"crm-1"}`); r.status != 201 {
		t.Fatalf("create: %d %v", r.status, r.body)
	}
	r := call(t, "GET", base+"/api/v1/accounts?external_id=crm-1", key, "")
	data, _ := r.body["data"].([]any)
	if r.status != 200 || len(data) != 1 {
		t.Fatalf("list: %d %v, want the one account", r.status, r.body)
	}
	if err := stop(); err != nil {
		t.Fatalf("serve returned %v", err)
	}

	// The records are in MongoDB, not in a SQLite file.
	wss, err := db.FindWorkspaces(t.Context())
	if err != nil || len(wss) != 1 || wss[0].ID != wsID {
		t.Fatalf("workspaces in MongoDB: %v, %v; want %s", wss, err, wsID)
	}
	if _, err := os.Stat(filepath.Join(e["HUSTACK_DATA_DIR"], "hustack.db")); !os.IsNotExist(err) {
		t.Errorf("a SQLite file was created with MONGODB_URI set (stat: %v)", err)
	}
	keys := mustJSON[[]map[string]any](t, e, "key", "list", "--json", "--workspace", wsID)
	if len(keys) != 1 || keys[0]["name"] != "sync" {
		t.Errorf("key list from MongoDB: %v", keys)
	}
}

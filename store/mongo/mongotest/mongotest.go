// Package mongotest gives tests a real MongoDB-protocol server: the one named
// by MONGODB_URI when that is set, otherwise an embedded FerretDB (SQLite
// handler) started once per test binary, on a loopback port. Only tests import
// this package, so FerretDB never reaches the production binary.
package mongotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/hustack/hustack/store/mongo"
)

// EnvURI names the environment variable that points the tests at an external
// server (for example the mongo service of docker-compose.yml).
const EnvURI = "MONGODB_URI"

// EnvLog, when set, sends the embedded FerretDB's log to standard error
// (debug level) instead of discarding it.
const EnvLog = "MONGOTEST_LOG"

// FerretDBSkipReason prefixes the reason of a test skipped because FerretDB
// lacks a MongoDB feature; the rest of the reason says which.
const FerretDBSkipReason = "FerretDB 1.24 does not support this: "

// timeout bounds starting the server and each setup or cleanup step.
const timeout = 30 * time.Second

var (
	once     sync.Once
	uri      string
	ferret   bool
	startErr error

	// admin is the harness's own client, used to drop test databases after
	// the backends using them are closed.
	admin *driver.Client
	// stopFerret is set when this package started an embedded FerretDB.
	stopFerret func()
)

// start runs once per test binary. The embedded FerretDB keeps its SQLite
// files in a temporary directory, one file per database, and each test's
// database is dropped when the test ends. FerretDB serves until the process
// exits, or until Main stops it and removes the directory. (SQLite's
// in-memory mode is no option: FerretDB gives each in-memory database a
// single connection, and an update, which reads and writes in one request,
// deadlocks on it.)
func start() {
	if u := os.Getenv(EnvURI); u != "" {
		uri = u
	} else if uri, startErr = startFerretDB(); startErr != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if admin, startErr = driver.Connect(options.Client().ApplyURI(uri)); startErr != nil {
		return
	}
	ferret, startErr = isFerretDB(ctx, admin)
}

func startFerretDB() (string, error) {
	dir, err := os.MkdirTemp("", "hustack-ferretdb-")
	if err != nil {
		return "", err
	}
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv(EnvLog) != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/", // the trailing slash is required
		Logger:    logger,
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(ctx)
	}()
	stopFerret = func() {
		cancel()
		<-done
		_ = os.RemoveAll(dir)
	}
	return f.MongoDBURI(), nil
}

// isFerretDB reports whether the server is FerretDB, which names its own
// version in buildInfo.
func isFerretDB(ctx context.Context, c *driver.Client) (bool, error) {
	var info bson.M
	cmd := bson.D{{Key: "buildInfo", Value: 1}}
	if err := c.Database("admin").RunCommand(ctx, cmd).Decode(&info); err != nil {
		return false, err
	}
	_, ok := info["ferretdbVersion"]
	return ok, nil
}

// Main runs the tests of m, then disconnects the harness and stops the
// embedded FerretDB, if one was started, removing its files. Use it from
// TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(mongotest.Main(m)) }
//
// Without it, FerretDB simply stops with the test process, leaving its (by
// then empty) temporary directory behind.
func Main(m *testing.M) int {
	code := m.Run()
	if admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		_ = admin.Disconnect(ctx)
		cancel()
	}
	if stopFerret != nil {
		stopFerret()
	}
	return code
}

// URI returns the URI of the test server, starting it on first use. Failing to
// start it fails the test.
func URI(t testing.TB) string {
	t.Helper()
	once.Do(start)
	if startErr != nil {
		t.Fatalf("mongotest: start test server: %v", startErr)
	}
	return uri
}

// IsFerretDB reports whether the test server is FerretDB, so that a test can
// skip (with FerretDBSkipReason and the reason) only what FerretDB cannot do.
func IsFerretDB(t testing.TB) bool {
	t.Helper()
	URI(t)
	return ferret
}

// DatabaseName returns a new, unique database name for a test.
func DatabaseName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return "hustack_test_" + hex.EncodeToString(b)
}

// Open returns a backend on a fresh database. When the test ends the backend
// is closed (closing it earlier is fine) and the database dropped.
func Open(t testing.TB) *mongo.DB {
	t.Helper()
	return OpenDatabase(t, DatabaseName())
}

// OpenDatabase opens a backend on the named database; open the same name
// twice to get two backends over one database. When the test ends the
// backend is closed and the database dropped.
func OpenDatabase(t testing.TB, name string) *mongo.DB {
	t.Helper()
	u := URI(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	db, err := mongo.Open(ctx, u, name)
	if err != nil {
		t.Fatalf("mongotest: open database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("mongotest: close database %s: %v", name, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := admin.Database(name).Drop(ctx); err != nil {
			t.Errorf("mongotest: drop database %s: %v", name, err)
		}
	})
	return db
}

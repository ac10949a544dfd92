package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's log writes and the
// test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs serveOn on a loopback port with the configuration of e and
// the given app options, and returns the base URL and a function that stops
// the server and returns what serveOn returned.
func startServer(t *testing.T, e testEnv, opts ...appOption) (string, func() error, *syncBuffer) {
	t.Helper()
	cfg, err := loadConfig(e.getenv)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	c := &cli{cmd: commands[0], cfg: cfg, stdout: io.Discard, stderr: logs}
	go func() { done <- serveOn(ctx, c, ln, opts...) }()
	stopped := false
	stop := func() error {
		cancel()
		if stopped {
			return nil
		}
		stopped = true
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("serveOn did not return within 30 s of cancellation")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + ln.Addr().String(), stop, logs
}

var testClient = &http.Client{Timeout: 10 * time.Second}

type apiResponse struct {
	status int
	body   map[string]any
	header http.Header
}

func call(t *testing.T, method, url, key string, body string) apiResponse {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: status %d, body is not a JSON object: %v", method, url, resp.StatusCode, err)
	}
	return apiResponse{status: resp.StatusCode, body: m, header: resp.Header}
}

// TestServe runs the server on a real SQLite file while the command line
// works on the same file, as an operator would.
func TestServe(t *testing.T) {
	e := newTestEnv(t)
	base, stop, logs := startServer(t, e)

	health := call(t, "GET", base+"/api/v1/health", "", "")
	if health.status != http.StatusOK || health.body["status"] != "ok" || health.body["service"] != "hustack-api" {
		t.Fatalf("health = %d %v", health.status, health.body)
	}

	// Workspace and key created by the command line while the server runs.
	ws := createWorkspace(t, e, "Acme")
	k := mustJSON[map[string]any](t, e, "key", "create", "--json", "--workspace", ws, "--name", "ci", "--scopes", "read:accounts,write:accounts")
	key := k["key"].(string)

	if r := call(t, "GET", base+"/api/v1/accounts", "", ""); r.status != http.StatusUnauthorized {
		t.Errorf("list without a key = %d %v, want 401", r.status, r.body)
	}
	created := call(t, "POST", base+"/api/v1/accounts", key, `{"name":"Initech"}`)
	if created.status != http.StatusCreated || created.body["name"] != "Initech" || created.body["api_key_id"] != k["id"] {
		t.Fatalf("create account = %d %v", created.status, created.body)
	}
	list := call(t, "GET", base+"/api/v1/accounts", key, "")
	data, _ := list.body["data"].([]any)
	if list.status != http.StatusOK || len(data) != 1 || data[0].(map[string]any)["id"] != created.body["id"] {
		t.Fatalf("list accounts = %d %v", list.status, list.body)
	}

	// A revocation by the command line reaches the running server: its key
	// cache lives for 1 s, so within 2 s the key answers 410.
	mustRun(t, e, "key", "revoke", k["id"].(string))
	var last apiResponse
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; i < 40; i++ {
		last = call(t, "GET", base+"/api/v1/accounts", key, "")
		if last.status != http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if last.status != http.StatusGone || last.body["error"] != "revoked_key" {
		t.Errorf("after revoke: %d %v, want 410 revoked_key", last.status, last.body)
	}

	if err := stop(); err != nil {
		t.Errorf("serveOn after cancellation = %v, want nil", err)
	}
	out := logs.String()
	if n := strings.Count(out, "hustack listening"); n != 1 {
		t.Errorf("the listening address is logged %d times, want once:\n%s", n, out)
	}
	if !strings.Contains(out, base) || !strings.Contains(out, "hustack stopped") {
		t.Errorf("logs lack the address or the stop:\n%s", out)
	}
	if strings.Contains(out, key) {
		t.Errorf("logs contain the raw key")
	}
	// The store was closed: the command line still opens it.
	mustRun(t, e, "workspace", "list")
}

// TestServeHTTPDrains checks that a request in flight when shutdown starts
// completes, and that serveHTTP then returns nil.
func TestServeHTTPDrains(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, ln, handler, slog.New(slog.DiscardHandler), 10*time.Second) }()

	type reply struct {
		body string
		err  error
	}
	replies := make(chan reply, 1)
	go func() {
		resp, err := testClient.Get("http://" + addr + "/slow")
		if err != nil {
			replies <- reply{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		replies <- reply{body: string(b), err: err}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the handler")
	}
	cancel()
	// Shutdown has begun once the listener refuses new connections.
	refused := false
	for i := 0; i < 200 && !refused; i++ {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			refused = true
			break
		}
		conn.Close()
		time.Sleep(10 * time.Millisecond)
	}
	if !refused {
		t.Fatal("the listener still accepts connections after cancellation")
	}
	close(release)
	r := <-replies
	if r.err != nil || r.body != "finished" {
		t.Errorf("in-flight request = %q, %v; want it to finish", r.body, r.err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serveHTTP = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serveHTTP did not return after draining")
	}
}

// TestServeHTTPDrainIsBounded checks that a request that never finishes
// does not keep the server from stopping.
func TestServeHTTPDrainIsBounded(t *testing.T) {
	entered := make(chan struct{})
	stuck := make(chan struct{})
	defer close(stuck)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-stuck
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serveHTTP(ctx, ln, handler, slog.New(slog.DiscardHandler), 100*time.Millisecond) }()
	go func() {
		if resp, err := testClient.Get("http://" + ln.Addr().String() + "/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the handler")
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "did not finish") {
			t.Errorf("serveHTTP = %v, want an error saying requests did not finish", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serveHTTP did not return although its drain timeout had passed")
	}
}

func TestServeListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e := newTestEnv(t)
	e["HUSTACK_ADDR"] = ln.Addr().String() // taken
	r := runCLI(t, e, "serve")
	if r.err == nil || !strings.Contains(r.err.Error(), "listen on "+ln.Addr().String()) {
		t.Errorf("serve on a taken address = %v, want a listen error", r.err)
	}
}

// TestOpenMongoErrorMasksPassword opens the MongoDB backend against a port
// where nothing listens: the error must not show the password.
func TestOpenMongoErrorMasksPassword(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	e := newTestEnv(t)
	e["MONGODB_URI"] = "mongodb://admin:Sup3rSecretPw@" + addr + "/?serverSelectionTimeoutMS=300&connectTimeoutMS=300"
	r := runCLI(t, e, "workspace", "list")
	if r.err == nil {
		t.Fatal("workspace list against no MongoDB server succeeded")
	}
	msg := errorText(r.err)
	if strings.Contains(msg, "Sup3rSecretPw") || !strings.Contains(msg, "admin:xxxxx@"+addr) {
		t.Errorf("error = %q, want the URI with its password masked", msg)
	}
}

var listeningPattern = regexp.MustCompile(`"addr":"http://(127\.0\.0\.1:\d+)"`)

// TestServeSIGTERM starts the command as a real process, stops it with
// SIGTERM and expects exit status 0.
func TestServeSIGTERM(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skipf("cannot find the test binary to start it as hustack: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "serve")
	cmd.Env = append(os.Environ(),
		"HUSTACK_TEST_RUN_MAIN=1",
		"HUSTACK_ADDR=127.0.0.1:0",
		"HUSTACK_DATA_DIR="+t.TempDir(),
		"HUSTACK_LOG_FORMAT=json",
		"HUSTACK_LOG_LEVEL=info",
		"MONGODB_URI=",
	)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Read the log until the listening line, then keep the rest.
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var addr string
	var logs []string
	for addr == "" {
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("hustack serve exited before listening:\n%s", strings.Join(logs, "\n"))
			}
			logs = append(logs, line)
			if m := listeningPattern.FindStringSubmatch(line); m != nil {
				addr = m[1]
			}
		case <-ctx.Done():
			t.Fatalf("hustack serve did not log its address:\n%s", strings.Join(logs, "\n"))
		}
	}
	if r := call(t, "GET", "http://"+addr+"/api/v1/health", "", ""); r.status != http.StatusOK {
		t.Fatalf("health = %d %v", r.status, r.body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for line := range lines { // ends when the process closes stderr
		logs = append(logs, line)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("hustack serve after SIGTERM: %v, want exit status 0\n%s", err, strings.Join(logs, "\n"))
	}
	all := strings.Join(logs, "\n")
	if !strings.Contains(all, "shutting down") || !strings.Contains(all, "hustack stopped") {
		t.Errorf("logs lack the shutdown:\n%s", all)
	}
}

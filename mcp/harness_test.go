package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/hustack/hustack/api"
	hustackmcp "github.com/hustack/hustack/mcp"
	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/sqlite"
)

// Protocol revisions the endpoint must serve.
const (
	protoModern = "2026-07-28"
	protoLegacy = "2025-11-25"
)

// env is a real Hustack server (api + MCP handler + SQLite) with two
// workspaces and a few keys.
type env struct {
	svc    *store.Service
	url    string // server root, e.g. http://127.0.0.1:PORT
	logs   *syncBuffer
	logger *slog.Logger
	usage  *usageSink
	wsA    *store.Workspace
	wsB    *store.Workspace
	keys   map[string]string // key name -> raw key
}

// Keys every env has.
const (
	keyFull         = "full"          // workspace A, every scope
	keyReadAccounts = "read-accounts" // workspace A, read:accounts
	keyNotes        = "notes"         // workspace A, read:notes and write:notes
	keyOther        = "other"         // workspace B, every scope
)

func newEnv(t testing.TB, opts ...store.Option) *env {
	t.Helper()
	ctx := t.Context()
	backend, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hustack.db"))
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	svc := store.NewService(backend, opts...)
	t.Cleanup(func() { _ = svc.Close() })

	e := &env{svc: svc, logs: &syncBuffer{}, usage: &usageSink{}, keys: map[string]string{}}
	e.logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	h := hustackmcp.NewHandler(svc, hustackmcp.Config{Logger: e.logger, RequestID: api.RequestIDFromContext})
	srv := httptest.NewServer(api.New(api.Config{Service: svc, MCP: h, Logger: e.logger, Usage: e.usage}))
	t.Cleanup(srv.Close)
	e.url = srv.URL

	if e.wsA, err = svc.CreateWorkspace(ctx, "Workspace A"); err != nil {
		t.Fatal(err)
	}
	if e.wsB, err = svc.CreateWorkspace(ctx, "Workspace B"); err != nil {
		t.Fatal(err)
	}
	e.keys[keyFull] = e.newKey(t, e.wsA.ID, keyFull, store.AllScopes()...)
	e.keys[keyReadAccounts] = e.newKey(t, e.wsA.ID, keyReadAccounts, store.ReadScope("accounts"))
	e.keys[keyNotes] = e.newKey(t, e.wsA.ID, keyNotes, store.ReadScope("notes"), store.WriteScope("notes"))
	e.keys[keyOther] = e.newKey(t, e.wsB.ID, keyOther, store.AllScopes()...)
	return e
}

func (e *env) newKey(t testing.TB, workspaceID, name string, scopes ...store.Scope) string {
	t.Helper()
	_, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: workspaceID, Name: name, Scopes: scopes})
	if err != nil {
		t.Fatalf("create key %s: %v", name, err)
	}
	return raw
}

func (e *env) mcpURL() string  { return e.url + api.MCPPath }
func (e *env) restURL() string { return e.url + api.APIPrefix }

// usageSink collects the usage events the API records.
type usageSink struct {
	mu     sync.Mutex
	events []store.UsageEvent
}

func (u *usageSink) Record(ev store.UsageEvent) {
	u.mu.Lock()
	u.events = append(u.events, ev)
	u.mu.Unlock()
}

func (u *usageSink) all() []store.UsageEvent {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]store.UsageEvent(nil), u.events...)
}

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

// toolResult is a tool call's result as any client sees it.
type toolResult struct {
	IsError    bool
	Text       string          // the text content
	Structured json.RawMessage // structuredContent, nil if absent
	// Replayed is the result's _meta flag hustackmcp.ReplayedMeta.
	Replayed bool
}

// errorBody decodes the text of an isError result.
func (r toolResult) errorBody(t *testing.T) (code, message string) {
	t.Helper()
	var b struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(r.Text), &b); err != nil {
		t.Fatalf("isError text is not a JSON error body: %q", r.Text)
	}
	return b.Error, b.Message
}

// toolInfo is a listed tool as any client sees it.
type toolInfo struct {
	Name         string
	Annotations  map[string]any // the annotations object as sent
	OutputSchema bool
}

// session is one client connection, whatever the library and transport.
type session interface {
	ProtocolVersion() string
	ListTools(ctx context.Context) ([]toolInfo, error)
	// CallTool returns a protocol-level error for a refused call.
	CallTool(ctx context.Context, name string, args map[string]any) (toolResult, error)
	Close() error
}

// connector opens sessions with one client library over one transport.
type connector struct {
	name    string
	connect func(t *testing.T, e *env, key, version string) (session, error)
}

var connectors = []connector{
	{"mcp-go/http", connectMCPGoHTTP},
	{"go-sdk/http", connectSDKHTTP},
	{"mcp-go/stdio", connectMCPGoStdio},
	{"go-sdk/stdio", connectSDKStdio},
}

// mustConnect opens a session and closes it when the test ends.
func mustConnect(t *testing.T, c connector, e *env, key, version string) session {
	t.Helper()
	s, err := c.connect(t, e, key, version)
	if err != nil {
		t.Fatalf("%s: connect: %v", c.name, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// --- mcp-go ---

type mcpGoSession struct {
	c *mcpclient.Client
}

func initMCPGo(ctx context.Context, c *mcpclient.Client, version string) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "hustack-test", Version: "1"}
	if version == protoLegacy {
		req.Params.ProtocolVersion = protoLegacy // pins the initialize handshake
	}
	_, err := c.Initialize(ctx, req)
	return err
}

func connectMCPGoHTTP(t *testing.T, e *env, key, version string) (session, error) {
	var opts []transport.StreamableHTTPCOption
	if key != "" {
		opts = append(opts, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + key}))
	}
	c, err := mcpclient.NewStreamableHttpClient(e.mcpURL(), opts...)
	if err != nil {
		return nil, err
	}
	if err := initMCPGo(t.Context(), c, version); err != nil {
		_ = c.Close()
		return nil, err
	}
	return &mcpGoSession{c: c}, nil
}

func connectMCPGoStdio(t *testing.T, e *env, key, version string) (session, error) {
	p, err := startStdio(t, e, key)
	if err != nil {
		return nil, err
	}
	c := mcpclient.NewClient(transport.NewIO(p.clientIn, p.clientOut, nil))
	if err := initMCPGo(t.Context(), c, version); err != nil {
		_ = c.Close()
		return nil, errors.Join(err, p.wait(t))
	}
	return &stdioSession{session: &mcpGoSession{c: c}, p: p, t: t}, nil
}

func (s *mcpGoSession) ProtocolVersion() string { return s.c.ProtocolVersion() }

func (s *mcpGoSession) ListTools(ctx context.Context) ([]toolInfo, error) {
	res, err := s.c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, err
	}
	return toolInfos(res.Tools)
}

func (s *mcpGoSession) CallTool(ctx context.Context, name string, args map[string]any) (toolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := s.c.CallTool(ctx, req)
	if err != nil {
		return toolResult{}, err
	}
	out := toolResult{IsError: res.IsError, Structured: res.RawStructuredContent}
	if res.Meta != nil {
		out.Replayed = res.Meta.AdditionalFields[hustackmcp.ReplayedMeta] == true
	}
	for _, c := range res.Content {
		if tc, ok := c.(mcp.TextContent); ok {
			out.Text += tc.Text
		}
	}
	return out, nil
}

func (s *mcpGoSession) Close() error { return s.c.Close() }

// --- go-sdk ---

type sdkSession struct {
	cs *sdk.ClientSession
}

// bearer adds the Authorization header to every request.
type bearer struct {
	key  string
	next http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.next.RoundTrip(r)
}

func connectSDK(ctx context.Context, tr sdk.Transport, version string) (*sdkSession, error) {
	c := sdk.NewClient(&sdk.Implementation{Name: "hustack-test", Version: "1"}, nil)
	var opts *sdk.ClientSessionOptions
	if version == protoLegacy {
		opts = &sdk.ClientSessionOptions{ProtocolVersion: protoLegacy}
	}
	cs, err := c.Connect(ctx, tr, opts)
	if err != nil {
		return nil, err
	}
	return &sdkSession{cs: cs}, nil
}

func connectSDKHTTP(t *testing.T, e *env, key, version string) (session, error) {
	hc := &http.Client{Transport: http.DefaultTransport}
	if key != "" {
		hc.Transport = bearer{key: key, next: http.DefaultTransport}
	}
	return connectSDK(t.Context(), &sdk.StreamableClientTransport{Endpoint: e.mcpURL(), HTTPClient: hc, MaxRetries: -1}, version)
}

func connectSDKStdio(t *testing.T, e *env, key, version string) (session, error) {
	p, err := startStdio(t, e, key)
	if err != nil {
		return nil, err
	}
	s, err := connectSDK(t.Context(), &sdk.IOTransport{Reader: p.clientIn, Writer: p.clientOut}, version)
	if err != nil {
		return nil, errors.Join(err, p.wait(t))
	}
	return &stdioSession{session: s, p: p, t: t}, nil
}

func (s *sdkSession) ProtocolVersion() string { return s.cs.InitializeResult().ProtocolVersion }

func (s *sdkSession) ListTools(ctx context.Context) ([]toolInfo, error) {
	res, err := s.cs.ListTools(ctx, nil)
	if err != nil {
		return nil, err
	}
	return toolInfos(res.Tools)
}

func (s *sdkSession) CallTool(ctx context.Context, name string, args map[string]any) (toolResult, error) {
	res, err := s.cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return toolResult{}, err
	}
	out := toolResult{IsError: res.IsError, Replayed: res.Meta[hustackmcp.ReplayedMeta] == true}
	if res.StructuredContent != nil {
		if out.Structured, err = json.Marshal(res.StructuredContent); err != nil {
			return toolResult{}, err
		}
	}
	for _, c := range res.Content {
		if tc, ok := c.(*sdk.TextContent); ok {
			out.Text += tc.Text
		}
	}
	return out, nil
}

func (s *sdkSession) Close() error { return s.cs.Close() }

// toolInfos reads the tools of a tools/list answer, whichever SDK's types
// they come in, through their JSON form.
func toolInfos[T any](tools []T) ([]toolInfo, error) {
	var out []toolInfo
	for _, tl := range tools {
		b, err := json.Marshal(tl)
		if err != nil {
			return nil, err
		}
		info, err := decodeToolInfo(b)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	return out, nil
}

func decodeToolInfo(b []byte) (toolInfo, error) {
	var raw struct {
		Name         string          `json:"name"`
		Annotations  map[string]any  `json:"annotations"`
		OutputSchema json.RawMessage `json:"outputSchema"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return toolInfo{}, err
	}
	return toolInfo{Name: raw.Name, Annotations: raw.Annotations,
		OutputSchema: len(raw.OutputSchema) > 0 && string(raw.OutputSchema) != "null"}, nil
}

// --- stdio in process ---

// stdioPipes connects a client to hustackmcp.ServeStdio running in this
// process, which calls the test server's REST API.
type stdioPipes struct {
	clientIn  *io.PipeReader // the server's output
	clientOut *io.PipeWriter // the server's input
	cancel    context.CancelFunc
	done      chan error
}

// stdioMu keeps stdio servers one at a time: mcp-go's stdio server keeps
// its session in a package variable, so two in one process would share it.
var stdioMu sync.Mutex

func startStdio(t *testing.T, e *env, key string) (*stdioPipes, error) {
	if !stdioMu.TryLock() {
		return nil, errors.New("another in-process stdio session is open; close it first")
	}
	p := &stdioPipes{done: make(chan error, 1)}
	serverIn, clientOut := io.Pipe()
	clientIn, serverOut := io.Pipe()
	p.clientIn, p.clientOut = clientIn, clientOut
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	cfg := hustackmcp.StdioConfig{Config: hustackmcp.Config{Logger: e.logger}, URL: e.restURL(), Key: key}
	go func() {
		err := hustackmcp.ServeStdio(ctx, cfg, serverIn, serverOut)
		// The client sees the server's output end (at once if the key was
		// refused).
		_ = serverOut.Close()
		p.done <- err
	}()
	return p, nil
}

// wait closes the server's input and waits (bounded) for ServeStdio to
// return; its answer to the end of input is returned.
func (p *stdioPipes) wait(t *testing.T) error {
	defer stdioMu.Unlock()
	defer p.cancel()
	_ = p.clientOut.Close()
	select {
	case err := <-p.done:
		return err
	case <-time.After(10 * time.Second):
		t.Errorf("ServeStdio did not return within 10s of its input closing")
		return nil
	}
}

type stdioSession struct {
	session
	p      *stdioPipes
	t      *testing.T
	closed bool
}

func (s *stdioSession) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.session.Close()
	if errors.Is(err, io.ErrClosedPipe) {
		err = nil
	}
	if serr := s.p.wait(s.t); serr != nil {
		s.t.Errorf("ServeStdio returned %v after its input closed; want nil", serr)
	}
	return err
}

// --- output schemas ---

var (
	schemasOnce sync.Once
	schemas     map[string]*jsonschema.Schema
	schemasErr  error
)

// outputSchema returns the compiled output schema of a tool.
func outputSchema(t *testing.T, tool string) *jsonschema.Schema {
	t.Helper()
	schemasOnce.Do(func() {
		schemas = map[string]*jsonschema.Schema{}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		for _, tl := range hustackmcp.Tools() {
			b, err := json.Marshal(tl.OutputSchema)
			if err != nil {
				schemasErr = err
				return
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				schemasErr = err
				return
			}
			loc := "mem:///" + tl.Name + ".json"
			if err := c.AddResource(loc, doc); err != nil {
				schemasErr = err
				return
			}
			if schemas[tl.Name], err = c.Compile(loc); err != nil {
				schemasErr = fmt.Errorf("%s: %w", tl.Name, err)
				return
			}
		}
	})
	if schemasErr != nil {
		t.Fatalf("compile output schemas: %v", schemasErr)
	}
	s, ok := schemas[tool]
	if !ok {
		t.Fatalf("no tool %s", tool)
	}
	return s
}

// call calls a tool that must succeed, checks its structured result against
// the tool's output schema and the text fallback against the structured
// result, decodes it into out and returns it.
func call(t *testing.T, s session, tool string, args map[string]any, out any) toolResult {
	t.Helper()
	res, err := s.CallTool(t.Context(), tool, args)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.IsError {
		t.Fatalf("%s(%v): isError: %s", tool, args, res.Text)
	}
	if res.Structured == nil {
		t.Fatalf("%s: no structured content", tool)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(res.Structured))
	if err != nil {
		t.Fatalf("%s: structured content: %v", tool, err)
	}
	if err := outputSchema(t, tool).Validate(inst); err != nil {
		t.Fatalf("%s: structured content does not match the output schema: %v\n%s", tool, err, res.Structured)
	}
	if !jsonEqual(t, []byte(res.Text), res.Structured) {
		t.Fatalf("%s: text content differs from structured content:\n%s\n%s", tool, res.Text, res.Structured)
	}
	if out != nil {
		if err := json.Unmarshal(res.Structured, out); err != nil {
			t.Fatalf("%s: decode: %v", tool, err)
		}
	}
	return res
}

// callError calls a tool that must answer an isError result and returns its
// code and message.
func callError(t *testing.T, s session, tool string, args map[string]any) (code, message string) {
	t.Helper()
	res, err := s.CallTool(t.Context(), tool, args)
	if err != nil {
		t.Fatalf("%s: want an isError result, got a protocol error: %v", tool, err)
	}
	if !res.IsError {
		t.Fatalf("%s(%v): want isError, got %s", tool, args, res.Text)
	}
	return res.errorBody(t)
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		return false
	}
	if err := json.Unmarshal(b, &y); err != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

func toolNames(tools []toolInfo) []string {
	var out []string
	for _, tl := range tools {
		out = append(out, tl.Name)
	}
	return out
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// inProcessSession connects mcp-go's in-process client to srv.
func inProcessSession(t *testing.T, srv *server.MCPServer) session {
	t.Helper()
	c, err := mcpclient.NewInProcessClient(srv)
	if err != nil {
		t.Fatal(err)
	}
	if err := initMCPGo(t.Context(), c, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &mcpGoSession{c: c}
}

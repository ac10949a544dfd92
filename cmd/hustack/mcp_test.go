package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/hustack/hustack/store"
)

// buildHustack builds the hustack binary into a temporary directory.
func buildHustack(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hustack")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// mcpServer is a Hustack server of the real stack (api, MCP handler, store,
// embedded Redis, worker) on a loopback port.
type mcpServer struct {
	url string // root URL; the REST API is under /api/v1
	svc *store.Service
}

func startAppServer(t *testing.T) *mcpServer {
	t.Helper()
	cfg, err := loadConfig(newTestEnv(t).getenv)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Close(ctx); err != nil {
			t.Errorf("close app: %v", err)
		}
	})
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &mcpServer{url: srv.URL, svc: a.Service}
}

func (s *mcpServer) key(t *testing.T, ws *store.Workspace, scopes ...store.Scope) string {
	t.Helper()
	_, raw, err := s.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: ws.ID, Name: "mcp test", Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// toolsFor is the tool list a key with scopes must see: every operation
// whose scope it has, and those that need none.
func toolsFor(scopes ...store.Scope) []string {
	var names []string
	for _, op := range store.Operations {
		if op.Scope == "" || slices.Contains(scopes, op.Scope) {
			names = append(names, op.Name)
		}
	}
	slices.Sort(names)
	return names
}

// toolResult is what a tool call returned, whichever client made it.
type toolResult struct {
	isError    bool
	text       string
	structured json.RawMessage
}

// stdioClient is one MCP client library talking to a `hustack mcp` process.
type stdioClient interface {
	serverName() string
	tools(ctx context.Context) ([]string, error)
	call(ctx context.Context, name string, args map[string]any) (toolResult, error)
	close() error
}

// connector starts `hustack mcp` (bin) with env and connects a client to it
// over its stdin and stdout; the process's stderr goes to stderr.
type connector func(ctx context.Context, bin string, env []string, stderr *syncBuffer) (stdioClient, error)

// --- mark3labs/mcp-go ---

type mcpGoClient struct {
	c    *mcpclient.Client
	name string
}

func connectMCPGo(ctx context.Context, bin string, env []string, stderr *syncBuffer) (stdioClient, error) {
	c, err := mcpclient.NewStdioMCPClientWithOptions(bin, nil, []string{"mcp"},
		transport.WithCommandFunc(func(ctx context.Context, command string, _ []string, args []string) (*exec.Cmd, error) {
			cmd := exec.CommandContext(ctx, command, args...)
			cmd.Env = env
			cmd.Stderr = stderr
			return cmd, nil
		}))
	if err != nil {
		return nil, err
	}
	req := mcp.InitializeRequest{}
	req.Params.ClientInfo = mcp.Implementation{Name: "hustack-cmd-test", Version: "1"}
	res, err := c.Initialize(ctx, req)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return &mcpGoClient{c: c, name: res.ServerInfo.Name}, nil
}

func (c *mcpGoClient) serverName() string { return c.name }

func (c *mcpGoClient) tools(ctx context.Context) ([]string, error) {
	res, err := c.c.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return nil, err
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names, nil
}

func (c *mcpGoClient) call(ctx context.Context, name string, args map[string]any) (toolResult, error) {
	req := mcp.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := c.c.CallTool(ctx, req)
	if err != nil {
		return toolResult{}, err
	}
	out := toolResult{isError: res.IsError, structured: res.RawStructuredContent}
	for _, ct := range res.Content {
		if tc, ok := ct.(mcp.TextContent); ok {
			out.text += tc.Text
		}
	}
	return out, nil
}

func (c *mcpGoClient) close() error { return c.c.Close() }

// --- modelcontextprotocol/go-sdk ---

type sdkClient struct {
	cs *sdk.ClientSession
}

func connectSDK(ctx context.Context, bin string, env []string, stderr *syncBuffer) (stdioClient, error) {
	cmd := exec.Command(bin, "mcp")
	cmd.Env = env
	cmd.Stderr = stderr
	c := sdk.NewClient(&sdk.Implementation{Name: "hustack-cmd-test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &sdk.CommandTransport{Command: cmd, TerminateDuration: 5 * time.Second}, nil)
	if err != nil {
		return nil, err
	}
	return &sdkClient{cs: cs}, nil
}

func (c *sdkClient) serverName() string { return c.cs.InitializeResult().ServerInfo.Name }

func (c *sdkClient) tools(ctx context.Context) ([]string, error) {
	res, err := c.cs.ListTools(ctx, nil)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	return names, nil
}

func (c *sdkClient) call(ctx context.Context, name string, args map[string]any) (toolResult, error) {
	res, err := c.cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		return toolResult{}, err
	}
	out := toolResult{isError: res.IsError}
	if res.StructuredContent != nil {
		if out.structured, err = json.Marshal(res.StructuredContent); err != nil {
			return toolResult{}, err
		}
	}
	for _, ct := range res.Content {
		if tc, ok := ct.(*sdk.TextContent); ok {
			out.text += tc.Text
		}
	}
	return out, nil
}

func (c *sdkClient) close() error { return c.cs.Close() }

// TestMCPStdio builds hustack, runs `hustack mcp` as a subprocess against a
// server of the real stack, and drives it with two independent MCP client
// libraries.
func TestMCPStdio(t *testing.T) {
	bin := buildHustack(t)
	s := startAppServer(t)
	ctx := t.Context()
	wsA, err := s.svc.CreateWorkspace(ctx, "Workspace A")
	if err != nil {
		t.Fatal(err)
	}
	wsB, err := s.svc.CreateWorkspace(ctx, "Workspace B")
	if err != nil {
		t.Fatal(err)
	}
	readScopes := []store.Scope{"read:accounts"}
	writeScopes := []store.Scope{"read:accounts", "write:accounts", "read:notes"}
	readKey := s.key(t, wsA, readScopes...)
	writeKey := s.key(t, wsA, writeScopes...)
	otherKey := s.key(t, wsB, readScopes...)

	for _, tc := range []struct {
		name    string
		connect connector
	}{
		{"mcp-go", connectMCPGo},
		{"go-sdk", connectSDK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			// open starts `hustack mcp` with key; the session and the
			// process end when the test does.
			open := func(key string) (stdioClient, *syncBuffer) {
				t.Helper()
				stderr := &syncBuffer{}
				env := append(os.Environ(),
					"HUSTACK_URL="+s.url+"/api/v1",
					"HUSTACK_API_KEY="+key,
					"HUSTACK_LOG_FORMAT=json",
					"HUSTACK_LOG_LEVEL=info",
				)
				c, err := tc.connect(ctx, bin, env, stderr)
				if err != nil {
					t.Fatalf("connect to hustack mcp: %v\nstderr:\n%s", err, stderr)
				}
				closed := false
				t.Cleanup(func() {
					if !closed {
						_ = c.close()
					}
				})
				if got := c.serverName(); got != "hustack" {
					t.Errorf("server name = %q, want hustack", got)
				}
				return c, stderr
			}

			// A key that may only read accounts.
			reader, readerLogs := open(readKey)
			tools, err := reader.tools(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := toolsFor(readScopes...); !slices.Equal(tools, want) {
				t.Errorf("tools of a read:accounts key = %v, want %v", tools, want)
			}
			// A tool the key's scopes do not allow is refused as unknown.
			if res, err := reader.call(ctx, "create_account", map[string]any{"name": "Forbidden " + tc.name}); err == nil {
				t.Errorf("create_account with a read-only key = %+v, want the call refused", res)
			}

			// A key that may write accounts.
			writer, _ := open(writeKey)
			tools, err = writer.tools(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := toolsFor(writeScopes...); !slices.Equal(tools, want) {
				t.Errorf("tools of a read/write key = %v, want %v", tools, want)
			}
			created, err := writer.call(ctx, "create_account", map[string]any{"name": "Initech " + tc.name})
			if err != nil || created.isError {
				t.Fatalf("create_account = %+v, %v", created, err)
			}
			var acct map[string]any
			if err := json.Unmarshal(created.structured, &acct); err != nil || acct["name"] != "Initech "+tc.name || !store.ValidID(str(acct["id"])) {
				t.Fatalf("create_account structured result = %s (%v)", created.structured, err)
			}
			got, err := writer.call(ctx, "get_account", map[string]any{"id": acct["id"]})
			var fetched map[string]any
			if err != nil || got.isError || json.Unmarshal(got.structured, &fetched) != nil || fetched["id"] != acct["id"] || fetched["name"] != acct["name"] {
				t.Errorf("get_account = %+v, %v; want the account just created", got, err)
			}
			bad, err := writer.call(ctx, "create_account", map[string]any{"name": 42})
			if err != nil || !bad.isError || !strings.Contains(bad.text, "name") {
				t.Errorf("create_account with a number for name = %+v, %v; want an isError result about name", bad, err)
			}

			// The same id from another workspace does not exist there.
			other, _ := open(otherKey)
			cross, err := other.call(ctx, "get_account", map[string]any{"id": acct["id"]})
			if err != nil || !cross.isError || !strings.Contains(cross.text, `"not_found"`) {
				t.Errorf("get_account of workspace A's account with workspace B's key = %+v, %v; want isError not_found", cross, err)
			}

			// The refused create left nothing behind.
			list, err := writer.call(ctx, "list_accounts", map[string]any{"limit": 200})
			if err != nil || list.isError || strings.Contains(list.text+string(list.structured), "Forbidden "+tc.name) {
				t.Errorf("list_accounts = %+v, %v; want no account from the refused call", list, err)
			}

			if err := reader.close(); err != nil && !errors.Is(err, os.ErrClosed) {
				t.Logf("close: %v", err)
			}
			logs := readerLogs.String()
			if !strings.Contains(logs, `"msg":"serving MCP over stdio"`) || strings.Contains(logs, readKey) {
				t.Errorf("hustack mcp's stderr lacks its start line or shows the key:\n%s", logs)
			}
		})
	}

	// Bad configurations end before anything is served.
	e := newTestEnv(t)
	e["HUSTACK_URL"] = s.url + "/api/v1"
	if r := runCLI(t, e, "mcp"); r.err == nil || !strings.Contains(r.err.Error(), "HUSTACK_API_KEY is required") {
		t.Errorf("hustack mcp without a key = %v", r.err)
	}
	e["HUSTACK_API_KEY"] = "hs_live_" + strings.Repeat("x", 40)
	if r := runCLI(t, e, "mcp"); r.err == nil || !strings.Contains(r.err.Error(), "refused to identify the API key") {
		t.Errorf("hustack mcp with an unknown key = %v", r.err)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

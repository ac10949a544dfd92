// Package mcp serves Hustack's workspace-scoped operations as MCP tools, with
// the same permissions and workspace isolation as the REST API.
//
// One tool registry is derived from the operation table (store.Operations).
// The tools call an Operations implementation: in process, store.Scoped for
// the principal that package api put on the request context (NewHandler,
// Streamable HTTP at /mcp); remotely, the REST client in api/client for an
// API key (ServeStdio, the `hustack mcp` command). Other packages import it
// as hustackmcp, since mark3labs/mcp-go's package has the same name.
package mcp

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/hustack/hustack/api/client"
	"github.com/hustack/hustack/store"
)

// Operations is what the tools call. Every method checks the caller's scope
// and workspace itself: *store.Scoped in process, the REST API remotely
// (*client.Client, whose Idempotent sends the key as the Idempotency-Key
// header and lets the server keep it).
type Operations interface {
	FindRecords(ctx context.Context, r *store.Resource, lp store.ListParams) (store.Page[*store.Record], error)
	FindRecordByID(ctx context.Context, r *store.Resource, id string) (*store.Record, error)
	CreateRecord(ctx context.Context, r *store.Resource, input map[string]any) (*store.Record, error)
	UpdateRecord(ctx context.Context, r *store.Resource, id string, input map[string]any) (*store.Record, error)
	DeleteRecord(ctx context.Context, r *store.Resource, id string) error
	UpsertRecord(ctx context.Context, r *store.Resource, externalID string, input map[string]any) (*store.Record, bool, error)
	CreateRecords(ctx context.Context, r *store.Resource, inputs []map[string]any) ([]store.BatchResult, error)
	UpsertRecords(ctx context.Context, r *store.Resource, inputs []map[string]any) ([]store.BatchResult, error)
	// Idempotent runs fn, a write, at most once per idempotency key and
	// returns the first response again for a repeat (replayed true).
	Idempotent(ctx context.Context, key, fingerprint string, fn func(context.Context) (store.IdempotentResponse, error)) (store.IdempotentResponse, bool, error)
	Whoami(ctx context.Context) (*store.Me, error)
	CountUsage(ctx context.Context, q store.UsageQuery, by store.UsageGroup) ([]store.UsageCount, error)
	FindUsageLogs(ctx context.Context, q store.UsageQuery, lp store.ListParams) (store.Page[store.UsageEvent], error)
	// Key administration (scope admin:keys).
	FindAPIKeys(ctx context.Context) ([]store.KeyInfo, error)
	FindAPIKeyByID(ctx context.Context, id string) (*store.KeyInfo, error)
	CreateAPIKey(ctx context.Context, in store.KeyInput) (*store.APIKey, string, error)
	RevokeAPIKey(ctx context.Context, id string) (*store.KeyInfo, error)
	RotateAPIKey(ctx context.Context, id string, overlap time.Duration) (*store.APIKey, string, error)
	KeyPolicy(ctx context.Context) (store.KeyPolicy, error)
	UpdateKeyPolicy(ctx context.Context, p store.KeyPolicy) (store.KeyPolicy, error)
	// Webhook subscriptions and their deliveries (scopes read:webhooks and
	// write:webhooks).
	FindWebhooks(ctx context.Context) ([]*store.Webhook, error)
	FindWebhookByID(ctx context.Context, id string) (*store.Webhook, error)
	CreateWebhook(ctx context.Context, in store.WebhookInput) (*store.Webhook, string, error)
	UpdateWebhook(ctx context.Context, id string, in store.WebhookPatch) (*store.Webhook, error)
	DeleteWebhook(ctx context.Context, id string) error
	FindDeliveries(ctx context.Context, webhookID, status string, lp store.ListParams) (store.Page[*store.Delivery], error)
	ReplayDelivery(ctx context.Context, webhookID, deliveryID string) (*store.Delivery, error)
	TestWebhook(ctx context.Context, webhookID string) (*store.Delivery, error)
}

var (
	_ Operations = (*store.Scoped)(nil)
	_ Operations = (*client.Client)(nil)
)

// Caller is who a request runs as: the operations it may call, the scopes
// that decide which tools it sees, and the id of its API key, which is part
// of the fingerprint of calls with an idempotency_key.
type Caller struct {
	Ops    Operations
	Scopes []store.Scope
	KeyID  string
}

// CallerFunc returns the caller of the request carried by ctx.
type CallerFunc func(ctx context.Context) Caller

// InProcess returns the callers of an in-process server: store.Scoped for
// the principal on the request context (none: every scoped operation answers
// unauthorized, and only whoami is listed).
func InProcess(svc *store.Service) CallerFunc {
	return func(ctx context.Context) Caller {
		p, _ := store.PrincipalFromContext(ctx)
		return Caller{Ops: svc.Scoped(p), Scopes: p.Scopes, KeyID: p.KeyID}
	}
}

// Config configures the MCP server.
type Config struct {
	// Logger receives internal errors, logged once with the request id.
	// Nil means slog.Default().
	Logger *slog.Logger
	// RequestID returns the request id carried by ctx, if any. When nil or
	// when it returns "", the X-Request-Id header of the HTTP request is used.
	RequestID func(ctx context.Context) string
	// Version is reported to clients in the initialize result.
	Version string
}

func (c Config) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.Default()
	}
	return c.Logger
}

// ServerName is the name the server reports to clients.
const ServerName = "hustack"

const instructions = "Hustack is a CRM: accounts, contacts, leads, deals, activities and notes, all in the " +
	"workspace of the API key you connect with. Call whoami first to see the workspace and the scopes of your key; " +
	"you only see the tools your key's scopes allow. List tools are paginated: pass pagination.next_cursor back as " +
	"cursor until it is null. Every write tool takes an optional idempotency_key: repeat a call that may have failed " +
	"with the same key and arguments, and it is not carried out twice. For syncing with another system, " +
	"upsert by external_id and use the batch tools for up to 100 records at once. " +
	"With the admin:keys scope you can also list, create, rotate and revoke the workspace's API keys: a new key's " +
	"secret is returned only once, so hand it to the user at once. " +
	"With write:webhooks you can subscribe a URL to events (such as deal.created, account.* or *) so that changes are " +
	"pushed to it; the subscription's signing secret is also returned only once. " +
	"Errors come back as tool results with isError set and a JSON body {\"error\": code, \"message\": text}."

// NewServer returns an MCP server with one tool per entry of the operation
// table, calling the operations of the caller that callerFor returns for
// each request. tools/list shows only the tools the caller's scopes allow,
// and a call to any other tool is refused as an unknown tool.
func NewServer(callerFor CallerFunc, cfg Config) *server.MCPServer {
	ts := &toolServer{caller: callerFor, logger: cfg.logger(), requestIDFrom: cfg.RequestID}
	version := cfg.Version
	if version == "" {
		version = "v1"
	}
	s := server.NewMCPServer(ServerName, version,
		server.WithToolCapabilities(false),
		server.WithInstructions(instructions),
		server.WithToolFilter(ts.filter),
	)
	for _, t := range registry {
		s.AddTool(t.def, ts.handler(t))
	}
	return s
}

// toolServer holds what the tool handlers share.
type toolServer struct {
	caller        CallerFunc
	logger        *slog.Logger
	requestIDFrom func(context.Context) string
}

// filter keeps the tools the caller's scopes allow.
func (ts *toolServer) filter(ctx context.Context, tools []mcp.Tool) []mcp.Tool {
	scopes := ts.caller(ctx).Scopes
	out := make([]mcp.Tool, 0, len(tools))
	for _, t := range tools {
		rt, ok := registryByName[t.Name]
		if ok && (rt.op.Scope == "" || slices.Contains(scopes, rt.op.Scope)) {
			out = append(out, t)
		}
	}
	return out
}

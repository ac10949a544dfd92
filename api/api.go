// Package api serves the Hustack v1 REST API over the workspace-scoped
// operations of package store, and mounts the MCP endpoint behind the same
// authentication, rate limiting and usage recording.
//
// The api package only authenticates: it turns a Bearer key into a
// store.Principal and hands it to store.Scoped, where every operation checks
// its scope and workspace.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/hustack/hustack/api/console"
	"github.com/hustack/hustack/store"
)

// Config configures the HTTP handler returned by New.
type Config struct {
	Service *store.Service
	Logger  *slog.Logger
	Usage   UsageRecorder // nil: usage events are not recorded
	Limiter RateLimiter   // nil: no rate limiting
	MCP     http.Handler  // nil: /mcp is not served
	Version string        // build version, for logs
}

// UsageRecorder receives one event per authenticated request. Record must not
// block.
type UsageRecorder interface{ Record(store.UsageEvent) }

// RateLimiter decides whether a principal's request may proceed.
type RateLimiter interface {
	Allow(ctx context.Context, p store.Principal) (RateDecision, error)
}

// RateDecision is a rate limiter's answer for one request.
type RateDecision struct {
	Allowed    bool
	Limit      int
	Remaining  int
	Reset      time.Duration // until the bucket is full again
	RetryAfter time.Duration // when not allowed
}

// Paths served outside the operation table.
const (
	HealthPath = "/api/v1/health"
	MCPPath    = "/mcp"
	// ConsolePath serves the key administration screen; ConsolePath
	// without its trailing slash redirects there.
	ConsolePath = console.Path
)

// MaxBodyBytes is the largest request body accepted (1 MiB).
const MaxBodyBytes = 1 << 20

// server holds what the handlers and middleware share.
type server struct {
	svc     *store.Service
	log     *slog.Logger
	usage   UsageRecorder
	limiter RateLimiter
	limErrs logLimiter
}

// New returns the HTTP handler of the API: the /api/v1 routes of the
// operation table, the health check and, if cfg.MCP is set, the MCP endpoint.
func New(cfg Config) http.Handler {
	if cfg.Service == nil {
		panic("api: Config.Service is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &server{
		svc:     cfg.Service,
		log:     logger.With("component", "api", "version", cfg.Version),
		usage:   cfg.Usage,
		limiter: cfg.Limiter,
		limErrs: logLimiter{every: 10 * time.Second},
	}

	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	// Route on the escaped path and leave path values escaped: an external
	// id may contain "/" (sent as %2F), and handlers unescape it themselves.
	e.UseEscapedPath = true
	e.UnescapePathValues = false
	_ = e.SetTrustedProxies(nil) // nil never fails: client addresses come from the connection only

	// Every response, routed or not, gets a request id and security headers;
	// panics become a JSON 500; bodies are limited.
	e.Use(s.requestID, securityHeaders, s.recovery, s.limitBody)
	e.NoRoute(s.noRoute)
	e.NoMethod(s.noMethod)

	root := withHead{e}
	root.GET(HealthPath, health)
	registerDocs(root, s)
	registerConsole(root, console.Handler())

	// Authenticated routes: usage is recorded for every request that passed
	// authentication (including rate-limited ones); the inner recovery lets a
	// panicking handler still produce a usage event with status 500.
	rest := withHead{e.Group("", s.authenticate, s.recordUsage(store.TransportREST), s.recovery, s.rateLimit)}
	for _, rt := range Routes() {
		if rt.Idempotent {
			rest.Handle(rt.Method, rt.Path, s.idempotent(rt), s.handle(rt))
		} else {
			rest.Handle(rt.Method, rt.Path, s.handle(rt))
		}
	}

	if cfg.MCP != nil {
		mcp := e.Group("", s.authenticate, s.recordUsage(store.TransportMCP), s.recovery, s.rateLimit)
		h := gin.WrapH(cfg.MCP)
		for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
			mcp.Handle(m, MCPPath, h)
		}
	}
	return e
}

// withHead registers every GET route for HEAD as well: the same status and
// headers, no body (the server discards the body of a response to HEAD).
// Uptime checks and proxies probe with HEAD.
type withHead struct{ gin.IRouter }

func (w withHead) GET(path string, h ...gin.HandlerFunc) gin.IRoutes {
	return w.Handle(http.MethodGet, path, h...)
}

func (w withHead) Handle(method, path string, h ...gin.HandlerFunc) gin.IRoutes {
	routes := w.IRouter.Handle(method, path, h...)
	if method == http.MethodGet {
		w.IRouter.HEAD(path, h...)
	}
	return routes
}

// registerConsole serves the console's static files without
// authentication: the page itself authenticates, by calling the API with the
// admin key the user pastes. The console sets its own Content-Security-Policy
// (scripts and styles of its own origin, no inline script).
func registerConsole(r gin.IRouter, h http.Handler) {
	serve := gin.WrapH(h)
	r.GET(strings.TrimSuffix(ConsolePath, "/"), serve)
	r.GET(ConsolePath+"*filepath", serve)
}

type healthBody struct {
	Status  string `json:"status"`
	Service string `json:"service"`
	Version string `json:"version"`
}

func health(c *gin.Context) {
	c.JSON(http.StatusOK, healthBody{Status: "ok", Service: "hustack-api", Version: "v1"})
}

func (s *server) noRoute(c *gin.Context) {
	s.writeError(c, store.Errorf(store.ENOTFOUND, "No route matches %s %s.", c.Request.Method, safePath(c.Request.URL.Path)))
}

func (s *server) noMethod(c *gin.Context) {
	s.writeError(c, store.Errorf(EMETHODNOTALLOWED, "Method %s is not allowed here; allowed: %s.",
		safeMethod(c.Request.Method), c.Writer.Header().Get("Allow")))
}

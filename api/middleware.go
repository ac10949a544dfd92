package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/hustack/hustack/store"
)

// RequestIDHeader carries the request id on every response. A sane incoming
// value is kept, so a caller can correlate its own logs; otherwise one is
// generated. The MCP handler finds it on the request header as well.
const RequestIDHeader = "X-Request-Id"

// Keys of values kept on the gin context.
const (
	requestIDKey    = "hustack.request_id"
	rateDecisionKey = "hustack.rate_decision"
)

type requestIDContextKey struct{}

// RequestIDFromContext returns the request id of an authenticated request
// from its context ("" if none).
func RequestIDFromContext(ctx context.Context) string {
	id, _ := ctx.Value(requestIDContextKey{}).(string)
	return id
}

func (s *server) requestID(c *gin.Context) {
	id := c.Request.Header.Get(RequestIDHeader)
	if !saneRequestID(id) {
		id = store.NewID()
		c.Request.Header.Set(RequestIDHeader, id)
	}
	c.Set(requestIDKey, id)
	c.Writer.Header()[RequestIDHeader] = []string{id}
	c.Next()
}

// saneRequestID accepts 1 to 128 characters of letters, digits and ._:- ,
// unless they hold an API key: request ids are logged and kept with usage.
func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 || strings.Contains(id, store.KeyPrefix) {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch ch := id[i]; {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9',
			ch == '.', ch == '_', ch == ':', ch == '-':
		default:
			return false
		}
	}
	return true
}

// Header values shared by every response. net/http only reads them, and a
// later Add appends to a full slice, which copies it.
var securityHeaderValues = map[string][]string{
	"X-Content-Type-Options":  {"nosniff"},
	"X-Frame-Options":         {"DENY"},
	"Content-Security-Policy": {"default-src 'none'; frame-ancestors 'none'"},
	"Referrer-Policy":         {"no-referrer"},
	"Cache-Control":           {"no-store"},
}

func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	for k, v := range securityHeaderValues {
		h[k] = v[:len(v):len(v)]
	}
	c.Next()
}

// recovery turns a panic into a logged internal error and a JSON 500. It is
// installed globally and again inside the authenticated chain, so a panic
// is caught (and logged) once, by the innermost one.
func (s *server) recovery(c *gin.Context) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v == http.ErrAbortHandler { // net/http's sentinel: let it abort the response
			panic(v)
		}
		s.log.ErrorContext(c.Request.Context(), "panic serving request",
			"request_id", c.GetString(requestIDKey),
			"method", c.Request.Method,
			"route", c.FullPath(),
			"panic", v,
			"stack", string(debug.Stack()))
		if c.Writer.Written() {
			c.Abort()
			return
		}
		respondError(c, errors.New("panic"))
	}()
	c.Next()
}

var errTooLarge = &store.Error{Code: EPAYLOADTOOLARGE, Message: errMessageTooLarge}

// limitBody refuses bodies over MaxBodyBytes: at once when Content-Length
// says so, and while reading otherwise.
func (s *server) limitBody(c *gin.Context) {
	if c.Request.ContentLength > MaxBodyBytes {
		respondError(c, errTooLarge)
		return
	}
	if c.Request.Body != nil && c.Request.Body != http.NoBody {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes)
	}
	c.Next()
}

// authenticate turns the Bearer key into a principal on the request context,
// or answers 401 (missing, malformed or unknown key) or 410 (revoked or
// expired key). Keys in the query string are refused: URLs end up in logs.
func (s *server) authenticate(c *gin.Context) {
	if keyInQuery(c.Request.URL.RawQuery) {
		respondError(c, store.Errorf(store.EUNAUTHORIZED, errMessageQueryKey))
		return
	}
	raw, err := bearerKey(c.Request.Header)
	var p store.Principal
	if err == nil {
		p, err = s.svc.Authenticate(c.Request.Context(), raw)
	}
	if err != nil {
		s.writeError(c, err)
		return
	}
	ctx := store.NewContextWithPrincipal(c.Request.Context(), p)
	ctx = context.WithValue(ctx, requestIDContextKey{}, c.GetString(requestIDKey))
	c.Request = c.Request.WithContext(ctx)
	c.Next()
}

// bearerKey returns the key of an "Authorization: Bearer <key>" header.
func bearerKey(h http.Header) (string, error) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0 || (len(vals) == 1 && strings.TrimSpace(vals[0]) == ""):
		return "", store.ErrMissingKey
	case len(vals) > 1:
		return "", store.ErrInvalidKey
	}
	scheme, key, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", store.ErrInvalidKey
	}
	if key = strings.TrimSpace(key); key == "" {
		return "", store.ErrMissingKey
	}
	return key, nil
}

// queryKeyNames are query parameters that clients use to pass credentials.
var queryKeyNames = map[string]bool{
	"api_key": true, "apikey": true, "api-key": true, "key": true,
	"access_token": true, "token": true, "auth": true, "authorization": true, "bearer": true,
}

// keyInQuery reports whether the query string tries to carry a key: a
// credential-like parameter name (also in bracket form, key[x]) or any value
// that looks like a Hustack key.
func keyInQuery(raw string) bool {
	if raw == "" {
		return false
	}
	for part := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		if uk, err := url.QueryUnescape(k); err == nil {
			k = uk
		}
		if uv, err := url.QueryUnescape(v); err == nil {
			v = uv
		}
		name, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(k)), "[")
		if queryKeyNames[name] || strings.Contains(v, store.KeyPrefix) || strings.Contains(k, store.KeyPrefix) {
			return true
		}
	}
	return false
}

// rateLimit asks the limiter about every authenticated request and writes
// the X-RateLimit-* headers. A limiter failure lets the request through.
func (s *server) rateLimit(c *gin.Context) {
	if s.limiter == nil {
		c.Next()
		return
	}
	p, _ := store.PrincipalFromContext(c.Request.Context())
	d, err := s.limiter.Allow(c.Request.Context(), p)
	if err != nil {
		s.limErrs.log(func(suppressed int) {
			s.log.WarnContext(c.Request.Context(), "rate limiter failed; request allowed",
				"request_id", c.GetString(requestIDKey), "key_id", p.KeyID,
				"error", err, "suppressed_since_last", suppressed)
		})
		c.Next()
		return
	}
	h := c.Writer.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(d.Remaining, 0)))
	h.Set("X-RateLimit-Reset", strconv.Itoa(ceilSeconds(d.Reset)))
	c.Set(rateDecisionKey, d)
	if !d.Allowed {
		h.Set("Retry-After", strconv.Itoa(max(ceilSeconds(d.RetryAfter), 1)))
		respondError(c, store.ErrRateLimited)
		return
	}
	c.Next()
}

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// logLimiter lets a repeated failure be logged once per period, with the
// number of occurrences not logged in between.
type logLimiter struct {
	every      time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (l *logLimiter) log(emit func(suppressed int)) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	emit(n)
}

// maxUserAgent bounds the user agent kept in a usage event, in bytes.
const maxUserAgent = 256

// recordUsage hands one usage event per authenticated request to the
// recorder, after the request is handled. Events carry the route template,
// never the key or any body.
func (s *server) recordUsage(transport string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.usage == nil {
			c.Next()
			return
		}
		start := time.Now()
		c.Next()
		p, _ := store.PrincipalFromContext(c.Request.Context())
		s.usage.Record(store.UsageEvent{
			ID:          store.NewID(),
			WorkspaceID: p.WorkspaceID,
			KeyID:       p.KeyID,
			Method:      c.Request.Method,
			Route:       c.FullPath(),
			Status:      c.Writer.Status(),
			DurationMS:  float64(time.Since(start).Microseconds()) / 1000,
			Time:        start.UTC().Truncate(time.Millisecond),
			RequestID:   c.GetString(requestIDKey),
			Transport:   transport,
			UserAgent:   truncateUTF8(redactKeys(c.Request.UserAgent()), maxUserAgent),
		})
	}
}

// redactKeys replaces whatever follows the key prefix in s, up to the next
// character that cannot be part of a key, so that a key a client put in an
// odd place (its user agent) is not kept.
func redactKeys(s string) string {
	if !strings.Contains(s, store.KeyPrefix) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, store.KeyPrefix)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString("[redacted]")
		s = s[i+len(store.KeyPrefix):]
		j := 0
		for j < len(s) && isKeyChar(s[j]) {
			j++
		}
		s = s[j:]
	}
}

func isKeyChar(ch byte) bool {
	return 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9'
}

// truncateUTF8 returns s as valid UTF-8 of at most n bytes.
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

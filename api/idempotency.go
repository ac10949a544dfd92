package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/hustack/hustack/store"
)

// Headers of idempotent requests.
const (
	// IdempotencyKeyHeader carries a client-chosen key (1 to 255 printable
	// ASCII characters) on a write. A retry with the same key and the same
	// request (API key, method, path, query and body, byte for byte) gets the
	// first response again instead of writing twice. Keys are remembered per
	// workspace; GET requests ignore the header.
	IdempotencyKeyHeader = "Idempotency-Key"
	// IdempotentReplayedHeader is "true" on a response replayed for a
	// repeated Idempotency-Key.
	IdempotentReplayedHeader = "Idempotent-Replayed"
)

// idempotent runs the rest of a write route's chain at most once per
// workspace and Idempotency-Key (see store.Scoped.Idempotent). Requests
// without the header pass straight through. The response is buffered while
// the handler runs, remembered, then written; a repeated request gets the
// remembered status and body, with the current request id and rate limit
// headers and Idempotent-Replayed: true.
//
// The fingerprint covers the calling key, the method, the path, the query and
// the raw body, so a key reused for anything else (including the same request
// made with another API key, which may lack the scope) is refused.
func (s *server) idempotent(rt Route) gin.HandlerFunc {
	return func(c *gin.Context) { s.runIdempotent(c, rt) }
}

func (s *server) runIdempotent(c *gin.Context, rt Route) {
	vals := c.Request.Header.Values(IdempotencyKeyHeader)
	if len(vals) == 0 {
		c.Next()
		return
	}
	if len(vals) > 1 {
		s.writeError(c, store.FieldError(IdempotencyKeyHeader, "must be sent only once."))
		return
	}
	key := vals[0]
	if !store.ValidIdempotencyKey(key) {
		s.writeError(c, store.FieldError(IdempotencyKeyHeader, store.IdempotencyKeyRule))
		return
	}
	body, err := readBody(c.Request)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ctx := c.Request.Context()
	p, _ := store.PrincipalFromContext(ctx)

	var (
		ran      bool
		panicked any
		buf      = &bufferedWriter{ResponseWriter: c.Writer, status: http.StatusOK}
	)
	resp, replayed, err := s.svc.Scoped(p).Idempotent(ctx, key, fingerprint(p, c.Request, body),
		func(context.Context) (resp store.IdempotentResponse, err error) {
			ran = true
			orig := c.Writer
			c.Writer = buf
			defer func() {
				c.Writer = orig
				if v := recover(); v != nil {
					// Answered as a 500 by recovery, so not remembered:
					// a retry may succeed.
					panicked = v
					resp = store.IdempotentResponse{Status: http.StatusInternalServerError}
				}
			}()
			c.Next()
			// A response holding a secret (a new API key, a webhook's
			// signing secret) is remembered without it.
			return store.IdempotentResponse{Status: buf.status, Body: redactedBody(c, buf.body.Bytes())}, nil
		})
	switch {
	case panicked != nil:
		panic(panicked) // the key is forgotten; recovery answers and logs
	case ran:
		// The handler answered (errors included); a failure to remember
		// its answer must not hide what was written.
		if err != nil {
			s.errorOf(c, err, "idempotency_key_stored", false)
		}
		buf.flushTo(c.Writer)
	case err != nil:
		s.writeError(c, err)
	case replayed:
		c.Header(IdempotentReplayedHeader, "true")
		replay(c, rt, resp)
		c.Abort()
	}
}

// readBody reads the whole request body, up to MaxBodyBytes, and puts it
// back for the handler.
func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			return nil, errTooLarge
		}
		return nil, store.Errorf(store.EBADREQUEST, "The request body could not be read.")
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}

// fingerprint identifies a request: the API key, method, escaped path, raw
// query and body, each length-prefixed so that no two requests collide by
// concatenation.
func fingerprint(p store.Principal, req *http.Request, body []byte) string {
	h := sha256.New()
	for _, part := range [][]byte{
		[]byte("rest"), []byte(p.KeyID), []byte(req.Method),
		[]byte(req.URL.EscapedPath()), []byte(req.URL.RawQuery), body,
	} {
		_, _ = h.Write(strconv.AppendInt(nil, int64(len(part)), 10))
		_, _ = h.Write([]byte{':'})
		_, _ = h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// replay writes a remembered response. A 201 names the new record, key or
// webhook subscription in Location again, as the first response did.
func replay(c *gin.Context, rt Route, resp store.IdempotentResponse) {
	if len(resp.Body) == 0 {
		c.Status(resp.Status)
		return
	}
	if resp.Status == http.StatusCreated {
		var rec struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(resp.Body, &rec) == nil && store.ValidID(rec.ID) {
			switch {
			case rt.Operation.Resource != nil:
				c.Header("Location", APIPrefix+"/"+rt.Operation.Resource.Name+"/"+rec.ID)
			case rt.Operation.Action == store.ActionCreateKey || rt.Operation.Action == store.ActionRotateKey:
				c.Header("Location", keyLocation(rec.ID))
			case rt.Operation.Action == store.ActionCreateWebhook:
				c.Header("Location", webhookLocation(rec.ID))
			}
		}
	}
	c.Data(resp.Status, gin.MIMEJSON+"; charset=utf-8", resp.Body)
}

// bufferedWriter keeps a handler's response in memory so that it can be
// remembered before the client sees it. Headers go straight to the real
// writer's header map, which nothing sends before flushTo.
type bufferedWriter struct {
	gin.ResponseWriter
	status  int
	written bool
	body    bytes.Buffer
}

func (w *bufferedWriter) WriteHeader(code int) {
	if code > 0 && !w.written {
		w.status = code
	}
}

func (w *bufferedWriter) WriteHeaderNow() { w.written = true }

func (w *bufferedWriter) Write(b []byte) (int, error) {
	w.written = true
	return w.body.Write(b)
}

func (w *bufferedWriter) WriteString(s string) (int, error) {
	w.written = true
	return w.body.WriteString(s)
}

func (w *bufferedWriter) Status() int { return w.status }

func (w *bufferedWriter) Size() int {
	if !w.written {
		return -1
	}
	return w.body.Len()
}

func (w *bufferedWriter) Written() bool { return w.written }

// Flush does nothing: the response is sent whole, after it is remembered.
func (w *bufferedWriter) Flush() {}

func (w *bufferedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("api: an idempotent request cannot hijack the connection")
}

// flushTo sends the buffered response.
func (w *bufferedWriter) flushTo(dst gin.ResponseWriter) {
	dst.WriteHeader(w.status)
	if w.body.Len() == 0 {
		dst.WriteHeaderNow()
		return
	}
	_, _ = dst.Write(w.body.Bytes())
}

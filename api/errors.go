package api

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/hustack/hustack/store"
)

// Error codes that exist only over HTTP; the others come from store.
const (
	EMETHODNOTALLOWED    = "method_not_allowed"
	EPAYLOADTOOLARGE     = "payload_too_large"
	EUNSUPPORTEDMEDIA    = "unsupported_media_type"
	errMessageTooLarge   = "The request body is larger than 1 MiB."
	errMessageMediaType  = "Content-Type must be application/json."
	errMessageQueryKey   = "API keys are not accepted in the query string. Send the key in the Authorization header: Authorization: Bearer <key>."
	errMessageBadReqBody = "The request body must be a JSON object."
)

// statusByCode maps error codes to HTTP statuses. Unknown codes are 500.
var statusByCode = map[string]int{
	store.EBADREQUEST:   http.StatusBadRequest,
	store.EUNAUTHORIZED: http.StatusUnauthorized,
	store.EFORBIDDEN:    http.StatusForbidden,
	store.ENOTFOUND:     http.StatusNotFound,
	EMETHODNOTALLOWED:   http.StatusMethodNotAllowed,
	store.ECONFLICT:     http.StatusConflict,
	store.EREVOKED:      http.StatusGone,
	store.EEXPIRED:      http.StatusGone,
	EPAYLOADTOOLARGE:    http.StatusRequestEntityTooLarge,
	EUNSUPPORTEDMEDIA:   http.StatusUnsupportedMediaType,
	store.ERATELIMITED:  http.StatusTooManyRequests,
	store.EINTERNAL:     http.StatusInternalServerError,

	store.EIDEMPOTENCYINUSE:  http.StatusConflict,
	store.EIDEMPOTENCYREUSED: http.StatusUnprocessableEntity,
}

// StatusOf returns the HTTP status for an error code.
func StatusOf(code string) int {
	if st, ok := statusByCode[code]; ok {
		return st
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON shape of every error response.
type ErrorBody struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// writeError is the one place errors become responses. Internal errors are
// logged here, once, with the request id; the client gets a generic message.
func (s *server) writeError(c *gin.Context, err error) {
	s.errorOf(c, err)
	respondError(c, err)
}

// errorOf returns the code and client-facing message of err, logging it
// (once, with the request id and attrs) when it is internal. Errors of batch
// items go through here as well as whole responses.
func (s *server) errorOf(c *gin.Context, err error, attrs ...any) (code, msg string) {
	code, msg = clientError(err)
	if StatusOf(code) >= http.StatusInternalServerError {
		args := append([]any{
			"request_id", c.GetString(requestIDKey),
			"method", c.Request.Method,
			"route", c.FullPath(),
			"error", err,
		}, attrs...)
		s.log.ErrorContext(c.Request.Context(), "request failed", args...)
	}
	return code, msg
}

// clientError returns what a client may see of err: its code, and its
// message unless it is internal. Codes without a status are internal.
func clientError(err error) (code, msg string) {
	code, msg = store.ErrorCode(err), store.ErrorMessage(err)
	if _, known := statusByCode[code]; !known {
		code, msg = store.EINTERNAL, store.InternalMessage
	}
	return code, msg
}

// respondError writes err without logging it.
func respondError(c *gin.Context, err error) {
	code, msg := clientError(err)
	status := StatusOf(code)
	if status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", "Bearer")
	}
	c.AbortWithStatusJSON(status, ErrorBody{
		Error:     code,
		Message:   msg,
		RequestID: c.GetString(requestIDKey),
	})
}

// safePath shortens a client-supplied path for an error message.
func safePath(p string) string {
	p = strings.ToValidUTF8(p, "\uFFFD")
	if utf8.RuneCountInString(p) > 200 {
		p = string([]rune(p)[:200]) + "..."
	}
	return p
}

func safeMethod(m string) string {
	if len(m) > 16 {
		m = m[:16]
	}
	return strings.ToValidUTF8(m, "\uFFFD")
}

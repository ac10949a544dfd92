package store

import (
	"errors"
	"fmt"
)

// Error codes. They go to clients unchanged: REST writes them as the "error"
// field and MCP as the code of an isError tool result.
const (
	EBADREQUEST   = "bad_request"
	EUNAUTHORIZED = "unauthorized"
	EFORBIDDEN    = "forbidden"
	EREVOKED      = "revoked_key"
	EEXPIRED      = "expired_key"
	ENOTFOUND     = "not_found"
	ECONFLICT     = "conflict"
	ERATELIMITED  = "rate_limit_exceeded"
	// EIDEMPOTENCYREUSED: an Idempotency-Key sent again with a different request.
	EIDEMPOTENCYREUSED = "idempotency_key_reused"
	// EIDEMPOTENCYINUSE: an Idempotency-Key whose first request still runs.
	EIDEMPOTENCYINUSE = "idempotency_key_in_use"
	EINTERNAL         = "internal_server_error"
)

// Error is the one error type of the application. Anything else that reaches
// a transport is treated as internal and never shown to the client.
type Error struct {
	Code    string
	Message string
	// Field names the offending input field of a bad_request, if any.
	Field string
}

func (e *Error) Error() string {
	return fmt.Sprintf("hustack error: code=%s message=%s", e.Code, e.Message)
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// FieldError returns a bad_request error about one input field. The message
// always starts with the field name so clients can tell what to fix.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Code: EBADREQUEST, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of an application error, EINTERNAL for any other
// error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}

// InternalMessage is what clients see for any internal error.
const InternalMessage = "An unexpected error occurred."

// ErrorMessage returns the client-facing message of err. Internal errors get a
// generic message; their details belong in the log only.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e) && e.Code != EINTERNAL:
		return e.Message
	default:
		return InternalMessage
	}
}

// Messages fixed by the API contract.
var (
	ErrMissingKey   = &Error{Code: EUNAUTHORIZED, Message: "Missing API key."}
	ErrInvalidKey   = &Error{Code: EUNAUTHORIZED, Message: "Invalid API key."}
	ErrRevokedKey   = &Error{Code: EREVOKED, Message: "This API key has been revoked."}
	ErrExpiredKey   = &Error{Code: EEXPIRED, Message: "This API key has expired."}
	ErrMissingScope = &Error{Code: EFORBIDDEN, Message: "API key does not have the required scope."}
	ErrRateLimited  = &Error{Code: ERATELIMITED, Message: "Too many requests. Please try again later."}
	// ErrStale is what Backend.UpdateRecord returns when the record changed
	// since it was read; Scoped retries.
	ErrStale = &Error{Code: ECONFLICT, Message: "The record was changed by another request; please retry."}
)

// notFound is the answer for a record that does not exist or that the caller
// may not see; the two cases are indistinguishable on purpose.
func notFound(what string) *Error {
	return Errorf(ENOTFOUND, "%s not found.", what)
}

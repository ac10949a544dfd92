package mcp

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/mark3labs/mcp-go/mcp"

	"github.com/hustack/hustack/api/client"
	"github.com/hustack/hustack/store"
)

// errorBody is the text of an isError result: the same fields as a REST
// error body.
type errorBody struct {
	Error     string `json:"error"`
	Message   string `json:"message"`
	RequestID string `json:"request_id,omitempty"`
}

// toolError turns err into an isError result: an application error keeps
// its code and message, exactly as REST shows them; anything else is logged
// here, once, and the client sees only the generic internal message.
func (ts *toolServer) toolError(ctx context.Context, req mcp.CallToolRequest, err error) *mcp.CallToolResult {
	body := errorBody{Error: store.ErrorCode(err), Message: store.ErrorMessage(err)}
	if body.Error == store.EINTERNAL {
		body.RequestID = ts.requestID(ctx, req, err)
		ts.logger.ErrorContext(ctx, "mcp tool call failed",
			"tool", req.Params.Name, "request_id", body.RequestID, "err", err)
	}
	b, _ := json.Marshal(body) // three strings: cannot fail
	return &mcp.CallToolResult{Content: []mcp.Content{mcp.NewTextContent(string(b))}, IsError: true}
}

// requestID returns the id of the request being served, if known: over
// HTTP the API's request id, over stdio the id the REST API gave the failed
// request.
func (ts *toolServer) requestID(ctx context.Context, req mcp.CallToolRequest, err error) string {
	if ts.requestIDFrom != nil {
		if id := ts.requestIDFrom(ctx); id != "" {
			return id
		}
	}
	if id := req.Header.Get("X-Request-Id"); id != "" {
		return id
	}
	var re *client.ResponseError
	if errors.As(err, &re) {
		return re.RequestID
	}
	return ""
}

package worker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hustack/hustack/store"
)

// encodeUsageBatch writes the JSON of UsageBatchPayload{Events: events}, as
// encoding/json would read it back. The flusher encodes every event the API
// serves, so this is the main per-event cost of usage logging in the API
// process: this takes one allocation per batch where json.Marshal takes one
// per event, and roughly half its time.
func encodeUsageBatch(events []store.UsageEvent) ([]byte, error) {
	size := 16
	for i := range events {
		e := &events[i]
		// field names, numbers and time take under 230 bytes; strings may grow
		// when escaped, which append handles
		size += 230 + len(e.ID) + len(e.WorkspaceID) + len(e.KeyID) + len(e.Method) + len(e.Route) +
			len(e.RequestID) + len(e.Transport) + len(e.UserAgent)
	}
	b := make([]byte, 0, size)
	b = append(b, `{"events":[`...)
	for i := range events {
		e := &events[i]
		if y := e.Time.Year(); y < 0 || y > 9999 {
			return nil, fmt.Errorf("event %s: time %v is out of range", e.ID, e.Time)
		}
		if math.IsNaN(e.DurationMS) || math.IsInf(e.DurationMS, 0) {
			return nil, fmt.Errorf("event %s: duration_ms %v is not a number", e.ID, e.DurationMS)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendString(b, e.ID)
		b = append(b, `,"workspace_id":`...)
		b = appendString(b, e.WorkspaceID)
		b = append(b, `,"key_id":`...)
		b = appendString(b, e.KeyID)
		b = append(b, `,"method":`...)
		b = appendString(b, e.Method)
		b = append(b, `,"route":`...)
		b = appendString(b, e.Route)
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(e.Status), 10)
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendFloat(b, e.DurationMS, 'g', -1, 64)
		b = append(b, `,"time":"`...)
		b = e.Time.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","request_id":`...)
		b = appendString(b, e.RequestID)
		b = append(b, `,"transport":`...)
		b = appendString(b, e.Transport)
		b = append(b, `,"user_agent":`...)
		b = appendString(b, e.UserAgent)
		b = append(b, '}')
	}
	return append(b, "]}"...), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Control characters are escaped
// and invalid UTF-8 becomes U+FFFD, as encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// decodeUsageBatch reads a UsageBatchPayload as json.Unmarshal would, with
// the same result and the same errors. The layout that encodeUsageBatch and
// json.Marshal write is read directly, in about a sixth of the time and with
// two allocations per batch (the events' strings share one copy of the
// payload). Anything else (other spacing or key order, null, a number or
// string the direct reader does not take) goes to json.Unmarshal whole.
func decodeUsageBatch(data []byte) (UsageBatchPayload, error) {
	if events, ok := readUsageBatch(data); ok {
		return UsageBatchPayload{Events: events}, nil
	}
	var p UsageBatchPayload
	err := json.Unmarshal(data, &p)
	return p, err
}

// readUsageBatch reads data if it has exactly the layout of
// encodeUsageBatch's output, with at least one event; ok is false otherwise.
func readUsageBatch(data []byte) (events []store.UsageEvent, ok bool) {
	r := batchReader{data: data, src: string(data)}
	if !r.lit(`{"events":[`) {
		return nil, false
	}
	events = make([]store.UsageEvent, 0, min(bytes.Count(data, []byte(`{"id":`)), MaxBatchEvents))
	for {
		events = append(events, store.UsageEvent{})
		e := &events[len(events)-1]
		ok := r.lit(`{"id":`) && r.str(&e.ID) &&
			r.lit(`,"workspace_id":`) && r.str(&e.WorkspaceID) &&
			r.lit(`,"key_id":`) && r.str(&e.KeyID) &&
			r.lit(`,"method":`) && r.str(&e.Method) &&
			r.lit(`,"route":`) && r.str(&e.Route) &&
			r.lit(`,"status":`) && r.int(&e.Status) &&
			r.lit(`,"duration_ms":`) && r.float(&e.DurationMS) &&
			r.lit(`,"time":`) && r.time(&e.Time) &&
			r.lit(`,"request_id":`) && r.str(&e.RequestID) &&
			r.lit(`,"transport":`) && r.str(&e.Transport) &&
			r.lit(`,"user_agent":`) && r.str(&e.UserAgent) &&
			r.lit(`}`)
		if !ok {
			return nil, false
		}
		if r.lit(`]}`) {
			return events, r.pos == len(data)
		}
		if !r.lit(`,`) {
			return nil, false
		}
	}
}

// batchReader reads a payload by layout. src holds the same bytes as data,
// so that strings can be taken from it without a copy each.
type batchReader struct {
	data []byte
	src  string
	pos  int
}

// lit consumes s if the input continues with it.
func (r *batchReader) lit(s string) bool {
	if !strings.HasPrefix(r.src[r.pos:], s) {
		return false
	}
	r.pos += len(s)
	return true
}

// token consumes a JSON string and returns its start and end, quotes
// included, and whether it holds only bytes that encoding/json keeps as they
// are (no escape, no control character, valid UTF-8).
func (r *batchReader) token() (start, end int, plain, ok bool) {
	start = r.pos
	if start >= len(r.src) || r.src[start] != '"' {
		return 0, 0, false, false
	}
	plain, ascii := true, true
	for i := start + 1; i < len(r.src); i++ {
		switch c := r.src[i]; {
		case c == '"':
			if !ascii && plain {
				plain = utf8.ValidString(r.src[start+1 : i])
			}
			r.pos = i + 1
			return start, i + 1, plain, true
		case c == '\\':
			plain = false
			i++ // the escaped byte cannot end the string
		case c < 0x20:
			return 0, 0, false, false // invalid JSON: encoding/json reports it
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return 0, 0, false, false
}

// str reads a JSON string into s. A string with escapes or invalid UTF-8 is
// unquoted by encoding/json itself.
func (r *batchReader) str(s *string) bool {
	start, end, plain, ok := r.token()
	if !ok {
		return false
	}
	if plain {
		*s = r.src[start+1 : end-1]
		return true
	}
	return json.Unmarshal(r.data[start:end], s) == nil
}

// time reads a JSON string into t with time.Time.UnmarshalJSON, as
// encoding/json does.
func (r *batchReader) time(t *time.Time) bool {
	start, end, _, ok := r.token()
	return ok && t.UnmarshalJSON(r.data[start:end]) == nil
}

// number consumes a JSON number and returns it.
func (r *batchReader) number() (string, bool) {
	s, i := r.src, r.pos
	digits := func() bool {
		n := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i > n
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case !digits():
		return "", false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if !digits() {
			return "", false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if !digits() {
			return "", false
		}
	}
	num := s[r.pos:i]
	r.pos = i
	return num, true
}

// int reads a JSON number into n as encoding/json does for an int: integers
// in range only.
func (r *batchReader) int(n *int) bool {
	num, ok := r.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || int64(int(v)) != v {
		return false
	}
	*n = int(v)
	return true
}

// float reads a JSON number into f as encoding/json does for a float64.
func (r *batchReader) float(f *float64) bool {
	num, ok := r.number()
	if !ok {
		return false
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return false
	}
	*f = v
	return true
}

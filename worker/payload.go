package worker

import (
	"fmt"
	"math"
	"strconv"
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

package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hustack/hustack/store"
)

// oddEvents returns events with every kind of string the JSON encoders
// treat apart (escapes, control characters, invalid UTF-8, HTML characters),
// times in several zones and the range ends, and random bytes.
func oddEvents() []store.UsageEvent {
	odd := []string{
		"", "plain", `quote " and backslash \`, "new\nline\r\ttab", "\x00\x01\x1f\x7f",
		"ünïcødé ✓ 🚀", "bad utf8 \xff\xfe end", "\xc3", "<script>&amp;</script>", "\u2028\u2029",
	}
	paris, _ := time.LoadLocation("Europe/Paris")
	times := []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999, time.UTC),
		time.Date(2026, 7, 1, 12, 0, 0, 5_000_000, paris),
		time.Now(),
	}
	durations := []float64{0, 1, 0.5, 1.5e-7, 123456.789, 1e21, 3e300, math.SmallestNonzeroFloat64, -2}
	var events []store.UsageEvent
	for i, s := range odd {
		events = append(events, store.UsageEvent{
			ID: s, WorkspaceID: odd[(i+1)%len(odd)], KeyID: odd[(i+2)%len(odd)], Method: s, Route: s,
			Status: 100 + i, DurationMS: durations[i%len(durations)], Time: times[i%len(times)],
			RequestID: s, Transport: s, UserAgent: s,
		})
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		raw := make([]byte, r.IntN(40))
		for j := range raw {
			raw[j] = byte(r.IntN(256))
		}
		events = append(events, store.UsageEvent{ID: string(raw), UserAgent: string(raw[:len(raw)/2]),
			Status: r.IntN(600), DurationMS: r.NormFloat64() * 1e3, Time: time.Unix(r.Int64N(1e10), r.Int64N(1e9))})
	}
	return events
}

// TestEncodeUsageBatch checks that the hand-written encoder reads back, with
// encoding/json, exactly as json.Marshal's output does.
func TestEncodeUsageBatch(t *testing.T) {
	events := oddEvents()
	got, err := encodeUsageBatch(events)
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(UsageBatchPayload{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	var a, b UsageBatchPayload
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatalf("encoded batch is not JSON: %v", err)
	}
	if err := json.Unmarshal(want, &b); err != nil {
		t.Fatal(err)
	}
	if len(a.Events) != len(events) {
		t.Fatalf("%d events read back, want %d", len(a.Events), len(events))
	}
	for i := range a.Events {
		if !reflect.DeepEqual(a.Events[i], b.Events[i]) {
			t.Fatalf("event %d reads back as\n%#v\nwith encoding/json as\n%#v", i, a.Events[i], b.Events[i])
		}
	}

	for name, e := range map[string]store.UsageEvent{
		"NaN duration":   {ID: "x", DurationMS: math.NaN()},
		"infinite":       {ID: "x", DurationMS: math.Inf(1)},
		"year 10000":     {ID: "x", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
		"negative years": {ID: "x", Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if _, err := encodeUsageBatch([]store.UsageEvent{e}); err == nil {
			t.Errorf("%s: encoded, want an error as encoding/json gives", name)
		}
	}
}

// sameAsEncodingJSON checks that decodeUsageBatch reads data exactly as
// json.Unmarshal does: the same events, or the same error.
func sameAsEncodingJSON(t *testing.T, data []byte) {
	t.Helper()
	got, gotErr := decodeUsageBatch(data)
	var want UsageBatchPayload
	wantErr := json.Unmarshal(data, &want)
	input := string(data)
	if len(input) > 200 {
		input = input[:200] + "..."
	}
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		t.Fatalf("%q: error %v, encoding/json gives %v", input, gotErr, wantErr)
	}
	for i := range min(len(got.Events), len(want.Events)) {
		if !reflect.DeepEqual(got.Events[i], want.Events[i]) {
			t.Fatalf("%q: event %d read as\n%#v\nencoding/json reads\n%#v", input, i, got.Events[i], want.Events[i])
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: read as %d events (nil: %v), encoding/json reads %d (nil: %v)",
			input, len(got.Events), got.Events == nil, len(want.Events), want.Events == nil)
	}
}

// canonicalEvent is one event as encodeUsageBatch and json.Marshal write it.
const canonicalEvent = `{"id":"a","workspace_id":"w","key_id":"k","method":"GET","route":"/r","status":200,` +
	`"duration_ms":1.5,"time":"2026-01-02T03:04:05.123Z","request_id":"q","transport":"rest","user_agent":"ua"}`

// decodeVariants are payloads around the layout the direct reader takes:
// each is read either directly or by encoding/json, and must come out the
// same either way.
func decodeVariants() []string {
	batch := func(events ...string) string { return `{"events":[` + strings.Join(events, ",") + `]}` }
	with := func(old, new string) string { return batch(strings.Replace(canonicalEvent, old, new, 1)) }
	v := []string{
		batch(canonicalEvent), batch(canonicalEvent, canonicalEvent),
		`{"events":[]}`, `{"events":null}`, `{}`, `null`, `[]`, ``, `{"events":[null]}`, `{"events":[{}]}`,
		`{ "events":[` + canonicalEvent + `]}`, batch(canonicalEvent) + "\n", batch(canonicalEvent) + "x",
		batch(canonicalEvent) + batch(canonicalEvent), `{"events":[` + canonicalEvent + `,]}`,
		`{"other":1,"events":[` + canonicalEvent + `]}`, `{"EVENTS":[` + canonicalEvent + `]}`,
		`{"events":[` + canonicalEvent + `],"events":[` + canonicalEvent + `]}`,
		with(`"route":"/r","status":200`, `"status":200,"route":"/r"`),
		with(`"id":"a",`, ``), with(`"id":"a"`, `"ID":"a"`), with(`"id":"a"`, `"i\u0064":"a"`),
		with(`"id":"a"`, `"id":"a","id":"b"`), with(`"user_agent":"ua"`, `"user_agent":"ua","extra":[1]`),
		with(`"id":"a"`, `"id" : "a"`),
	}
	for _, s := range []string{`2e2`, `200.0`, `-0`, `-1`, `0`, `0200`, `9223372036854775807`,
		`9223372036854775808`, `"200"`, `null`, `+1`, `-`, `1e999`} {
		v = append(v, with(`"status":200`, `"status":`+s))
	}
	for _, s := range []string{`0`, `-0`, `-0.0`, `1e400`, `-1e400`, `1e-400`, `.5`, `1.`, `1e`, `1e+`, `1E+2`,
		`1.5e-7`, `0x10`, `null`, `"1"`, `Infinity`, `NaN`, `01`, `1_0`, `123456789012345678901234567890`} {
		v = append(v, with(`"duration_ms":1.5`, `"duration_ms":`+s))
	}
	for _, s := range []string{`null`, `"2026-01-02T03:04:05Z"`, `"2026-01-02T03:04:05+02:00"`,
		`"2026-01-02T03:04:05.1-07:30"`, `"2026-01-02 03:04:05Z"`, `"2026-01-02T03:04:05"`, `"bad"`,
		`"2026-01-02T03:04:05\u005a"`, `""`, `1`, `"2026-01-02T03:04:05+24:00"`, `"2026-01-02T24:00:00Z"`,
		`"0000-01-01T00:00:00Z"`, `"2026-01-02T03:04:05,5Z"`, `"2026-02-30T03:04:05Z"`} {
		v = append(v, with(`"time":"2026-01-02T03:04:05.123Z"`, `"time":`+s))
	}
	for _, s := range []string{`"a\"b"`, `"\u00e9"`, `"\ud83d\ude80"`, `"\ud83d"`, `"\ude80\ud83d"`, `"\/\b\f\n\r\t"`,
		"\"\xff\"", "\"a\xc3\"", "\"\x01\"", "\"\t\"", `"é ✓ 🚀"`, "\"\xed\xa0\x80\"", "\"\xef\xbf\xbd\"",
		`"\x"`, `"\u12"`, `"\u0000"`, `"\\"`, `"\"`, `"a`, `a`, `null`, `1`, `"\u003cscript\u003e"`,
		"\"\u2028\u2029\""} {
		v = append(v, with(`"user_agent":"ua"`, `"user_agent":`+s), with(`"id":"a"`, `"id":`+s))
	}
	// every prefix of a batch, cut anywhere
	two := batch(canonicalEvent, canonicalEvent)
	for i := range len(two) {
		v = append(v, two[:i])
	}
	return v
}

// TestDecodeUsageBatch checks that decodeUsageBatch reads what both encoders
// write directly, and anything at all as encoding/json does.
func TestDecodeUsageBatch(t *testing.T) {
	events := oddEvents()
	events = append(events, store.UsageEvent{ID: "empty strings and zero numbers", Time: time.Now().UTC()})
	ours, err := encodeUsageBatch(events)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := json.Marshal(UsageBatchPayload{Events: events})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"encodeUsageBatch": ours, "json.Marshal": theirs} {
		t.Run(name, func(t *testing.T) {
			if _, ok := readUsageBatch(data); !ok {
				t.Errorf("the direct reader refuses the output of %s", name)
			}
			sameAsEncodingJSON(t, data)
		})
	}

	t.Run("variants", func(t *testing.T) {
		direct := 0
		for _, s := range decodeVariants() {
			if _, ok := readUsageBatch([]byte(s)); ok {
				direct++
			}
			sameAsEncodingJSON(t, []byte(s))
		}
		// The variants must exercise both paths, or the comparison above
		// proves nothing about one of them.
		if direct < 20 {
			t.Errorf("only %d variants read directly", direct)
		}
	})
}

// FuzzDecodeUsageBatch compares decodeUsageBatch with json.Unmarshal on any
// input; plain `go test` runs the seeds.
func FuzzDecodeUsageBatch(f *testing.F) {
	for _, s := range decodeVariants() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsEncodingJSON(t, data) })
}

// TestBatcherDeliversEachEventOnce records in bursts from several
// goroutines through a Batcher whose batches are decoded as the worker
// would, and checks that every event arrives exactly once, unchanged. The
// pauses between bursts let the flusher find the buffer empty, then full
// again while it is still sending, which is when buffers are swapped.
func TestBatcherDeliversEachEventOnce(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]store.UsageEvent{}
	dup := 0
	sink := func(_ context.Context, task *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
		var p UsageBatchPayload
		if err := json.Unmarshal(task.Payload(), &p); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range p.Events {
			if _, ok := seen[e.ID]; ok {
				dup++
			}
			seen[e.ID] = e
		}
		return &asynq.TaskInfo{}, nil
	}
	b := newBatcher(sink, BatcherConfig{BatchSize: 50, FlushInterval: time.Millisecond}, nil)
	const workers, rounds, burst = 4, 30, 200
	sent := make([][]store.UsageEvent, workers)
	for r := range rounds {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range burst {
					e := store.UsageEvent{ID: store.NewID(), WorkspaceID: "w", KeyID: fmt.Sprint("k", w),
						Status: r*burst + i, Time: time.Now().UTC().Truncate(time.Millisecond)}
					sent[w] = append(sent[w], e)
					b.Record(e)
				}
			})
		}
		wg.Wait()
		time.Sleep(3 * time.Millisecond)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	const total = workers * rounds * burst
	if dup != 0 || len(seen) != total {
		t.Fatalf("%d distinct events delivered, %d duplicates; want %d and none", len(seen), dup, total)
	}
	for _, events := range sent {
		for _, e := range events {
			if got, ok := seen[e.ID]; !ok || !reflect.DeepEqual(got, e) {
				t.Fatalf("event %s delivered as %+v, want %+v", e.ID, got, e)
			}
		}
	}
	if st := b.Stats(); st.Enqueued != total || st.Dropped != 0 || st.Buffered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// batchSizes is an enqueue sink that keeps the size of every batch.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (s *batchSizes) enqueue(_ context.Context, task *asynq.Task, _ ...asynq.Option) (*asynq.TaskInfo, error) {
	var p UsageBatchPayload
	if err := json.Unmarshal(task.Payload(), &p); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.sizes = append(s.sizes, len(p.Events))
	s.mu.Unlock()
	return &asynq.TaskInfo{}, nil
}

func (s *batchSizes) get() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sizes)
}

func TestBatchTriggers(t *testing.T) {
	event := func() store.UsageEvent {
		return store.UsageEvent{ID: store.NewID(), WorkspaceID: "w", KeyID: "k", Time: time.Now()}
	}

	t.Run("every N events", func(t *testing.T) {
		sink := &batchSizes{}
		b := newBatcher(sink.enqueue, BatcherConfig{BatchSize: 50, FlushInterval: time.Hour}, nil)
		for i := range 1003 {
			b.Record(event())
			if i%37 == 0 {
				time.Sleep(100 * time.Microsecond) // traffic, not one burst
			}
		}
		waitFor(t, "20 full batches", func() bool { return len(sink.get()) == 20 })
		if err := b.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		want := append(slices.Repeat([]int{50}, 20), 3)
		if got := sink.get(); !slices.Equal(got, want) {
			t.Fatalf("batch sizes %v, want twenty of 50 and the 3 left at Close", got)
		}
	})

	t.Run("every T", func(t *testing.T) {
		sink := &batchSizes{}
		b := newBatcher(sink.enqueue, BatcherConfig{BatchSize: 1000, FlushInterval: 5 * time.Millisecond}, nil)
		defer b.Close(context.Background())
		for range 3 {
			b.Record(event())
		}
		waitFor(t, "the interval to send a partial batch", func() bool { return b.Stats().Enqueued == 3 })
		if got := sink.get(); !slices.Equal(got, []int{3}) {
			t.Fatalf("batch sizes %v, want one of 3", got)
		}
	})
}

// BenchmarkDecodeUsageBatch reads back a payload of DefaultBatchSize events,
// the worker's cost before it stores them.
func BenchmarkDecodeUsageBatch(b *testing.B) {
	events := make([]store.UsageEvent, DefaultBatchSize)
	for i := range events {
		events[i] = benchEvent()
	}
	payload, err := encodeUsageBatch(events)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var p UsageBatchPayload
			if err := json.Unmarshal(payload, &p); err != nil || len(p.Events) != len(events) {
				b.Fatal(err, len(p.Events))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
	})
	b.Run("decodeUsageBatch", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := decodeUsageBatch(payload)
			if err != nil || len(p.Events) != len(events) {
				b.Fatal(err, len(p.Events))
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
	})
}

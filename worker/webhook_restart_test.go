package worker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/worker/redistest"
)

// redisServerBin is the Redis the restart test starts and kills.
const redisServerBin = "/usr/bin/redis-server"

// redisProcess is a redis-server the test started, without persistence:
// killing it loses everything it held.
type redisProcess struct {
	port string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis starts a redis-server on the loopback port (a free one when
// empty) and waits until it answers; it is killed at the end of the test.
func startRedis(t *testing.T, port string) *redisProcess {
	t.Helper()
	if _, err := os.Stat(redisServerBin); err != nil {
		t.Skipf("this test starts and kills its own Redis, and needs %s (%v): install the redis-server package", redisServerBin, err)
	}
	if port == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(ln.Addr().String())
		ln.Close()
	}
	p := &redisProcess{port: port, dir: t.TempDir(), done: make(chan struct{})}
	p.cmd = exec.Command(redisServerBin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--dir", p.dir, "--loglevel", "warning")
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", redisServerBin, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(p.kill)
	c := redis.NewClient(&redis.Options{Addr: p.addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("redis-server on port %s exited at start: %v", port, p.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on port %s does not answer: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *redisProcess) addr() string { return net.JoinHostPort("127.0.0.1", p.port) }

// kill ends the process with SIGKILL, by its pid, and waits for it.
func (p *redisProcess) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// TestWebhookRedisRestart kills the worker's Redis, which keeps nothing on
// disk, in the middle of a burst of changes, so that every queued fan-out
// and delivery is lost, and starts a new one on the same port: every
// change still reaches the receiver, from the outbox and the delivery log.
func TestWebhookRedisRestart(t *testing.T) {
	first := startRedis(t, "")
	e := &env{}
	e.openStore(t)
	name := redistest.Name(t)
	e.queues = Queues{Usage: name + "-usage", Maintenance: name + "-maintenance", Webhooks: name + "-webhooks",
		WebhookFanOut: name + "-webhooks-fanout"}
	rdb := redis.NewClient(&redis.Options{Addr: first.addr(), DialTimeout: 200 * time.Millisecond,
		ReadTimeout: time.Second, WriteTimeout: time.Second})
	t.Cleanup(func() { rdb.Close() })
	e.svc = store.NewService(e.db, store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: true}),
		store.WithEventClaimTimeout(500*time.Millisecond))
	admin := e.admin(t)
	// A receiver a little slow to answer, and few delivery workers, so that
	// deliveries queue up in Redis.
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		sleep(r, 3*time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	})
	subscribe(t, admin, rc.url, "lead.*")
	logs := &capture{}
	e.hookServer(t, e.svc, rdb, Config{WebhookConcurrency: 2, WebhookSweepInterval: time.Second,
		WebhookSweepGrace: time.Second}, slog.New(logs))

	// The burst: creates, and an update of every third record, until told
	// to stop (at most 3000 changes).
	var (
		changes atomic.Int64
		stop    = make(chan struct{})
		burst   sync.WaitGroup
		failed  atomic.Value
		created sync.Map
	)
	burst.Go(func() {
		for i := 0; changes.Load() < 3000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rec, err := admin.CreateRecord(context.Background(), store.Leads, map[string]any{"name": fmt.Sprint("lead ", i)})
			if err != nil {
				failed.Store(err)
				return
			}
			changes.Add(1)
			created.Store(rec.ID, true)
			if i%3 == 0 {
				if _, err := admin.UpdateRecord(context.Background(), store.Leads, rec.ID, map[string]any{"status": "Contacted"}); err != nil {
					failed.Store(err)
					return
				}
				changes.Add(1)
			}
			time.Sleep(time.Millisecond)
		}
	})
	stopBurst := func() {
		t.Helper()
		select {
		case <-stop:
		default:
			close(stop)
		}
		burst.Wait()
		if err, _ := failed.Load().(error); err != nil {
			t.Fatalf("the burst: %v", err)
		}
	}
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		burst.Wait()
	})

	// Kill Redis while deliveries wait in it.
	queued := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		n, _ := rdb.LLen(ctx, "asynq:{"+e.queues.Webhooks+"}:pending").Result()
		return n
	}
	waitFor(t, "deliveries to queue up in Redis during the burst", func() bool { return rc.count() > 0 && queued() >= 10 })
	lost := queued()
	first.kill()
	killedAt := changes.Load()
	time.Sleep(300 * time.Millisecond) // changes keep coming while Redis is away
	startRedis(t, first.port)
	time.Sleep(300 * time.Millisecond)
	stopBurst()
	total := changes.Load()
	if killedAt == 0 || total <= killedAt {
		t.Fatalf("%d changes before the kill, %d in all: the kill was not in the middle of the burst", killedAt, total)
	}

	deadline := time.Now().Add(20 * time.Second)
	for int64(len(rc.ids())) < total {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d changes delivered 20 s after the burst (Redis killed after %d changes with %d deliveries queued)",
				len(rc.ids()), total, killedAt, lost)
		}
		time.Sleep(20 * time.Millisecond)
	}
	rc.stays(t, rc.count(), "once every change arrived")
	if got := int64(len(rc.ids())); got != total {
		t.Fatalf("%d distinct webhook-ids for %d changes", got, total)
	}
	seen := map[string]bool{}
	for _, r := range rc.receipts() {
		ev := r.event(t)
		if ev.ID != r.header.Get(HeaderWebhookID) {
			t.Fatalf("body id %s, webhook-id %s", ev.ID, r.header.Get(HeaderWebhookID))
		}
		if ev.Type == "lead.created" {
			seen[ev.Data["id"].(string)] = true
		}
	}
	created.Range(func(id, _ any) bool {
		if !seen[id.(string)] {
			t.Errorf("lead %s: no lead.created received", id)
		}
		return true
	})
	t.Logf("%d changes (Redis killed after %d with %d deliveries queued), %d requests (%d duplicates)",
		total, killedAt, lost, rc.count(), rc.count()-int(total))
}

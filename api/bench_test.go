package api_test

// End-to-end benchmark of one subscription event: a progress UPDATE
// committed in PostgreSQL, its NOTIFY through the listener, the hub, the
// per-event read under the subscriber's row-level security, gqlgen and the
// websocket, to the client decoding it:
//
//	go test -run '^$' -bench SubscriptionEvent -benchtime 2000x ./api/
//
// ns/op is the whole round trip, one event at a time; p50-ms and p99-ms
// are the latency from the UPDATE's commit (Exec returned) to the client
// holding the event. The shared fan-out tool (docs/performance.md)
// measures the same path under load, with many sockets in another process.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/api"
	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/generation"
)

func BenchmarkSubscriptionEvent(b *testing.B) {
	const progressOnly = `subscription($id: ID!) { generationProgress(id: $id) { id status progress } }`
	tests := []struct {
		name  string
		query string
		// idle is how many other subscriptions, each on its own socket
		// and generation, stay open meanwhile.
		idle int
	}{
		{"progress", progressOnly, 0},
		{"progress+story", progressQuery, 0},
		{"progress/idle=1000", progressOnly, 1000},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			e := newEnv(b)
			srv := apptest.Start(b, e.DB, withSockets(func(s *api.Sockets) { s.Limits.SocketsPerUser = -1 }))
			alice := e.NewUser("alice@example.com", false)
			story := e.story("The Fox", "the-fox")
			gen := e.generation(alice, story, generation.InProgress)
			openIdle(b, e, srv.URL, alice, story, tt.idle)

			c := apptest.DialWS(b, srv.URL, protoTransportWS, apptest.AuthInit(alice.Token))
			c.Ack()
			c.Subscribe("1", tt.query, map[string]any{"id": gen})
			decodeProgress(b, c.NextEvent("1", 10*time.Second), "generationProgress")

			ctx := context.Background()
			var latencies []time.Duration
			progress := 0
			for b.Loop() {
				// 1..100 and round again: every update changes the row,
				// so every one is announced.
				progress = progress%100 + 1
				if _, err := e.Admin.Exec(ctx, `UPDATE story_generations SET progress = $2 WHERE id = $1`, gen, progress); err != nil {
					b.Fatal(err)
				}
				committed := time.Now()
				ev := c.NextEvent("1", 10*time.Second)
				latencies = append(latencies, time.Since(committed))
				if got := decodeProgress(b, ev, "generationProgress"); got.Progress != progress {
					b.Fatalf("event progress %d, want %d", got.Progress, progress)
				}
			}
			slices.Sort(latencies)
			b.ReportMetric(benchMillis(latencies[len(latencies)/2]), "p50-ms")
			b.ReportMetric(benchMillis(latencies[(len(latencies)*99)/100]), "p99-ms")
		})
	}
}

// openIdle opens n subscriptions, one socket each, on n new generations of
// u, and waits for their snapshots.
func openIdle(b *testing.B, e *env, url string, u user, story uuid.UUID, n int) {
	b.Helper()
	if n == 0 {
		return
	}
	gens := e.IDs(`
		INSERT INTO story_generations (user_id, story_id, status)
		SELECT $1, $2, 'in_progress' FROM generate_series(1, $3::int)
		RETURNING id`, u.ID, story, n)
	clients := make([]*wsClient, len(gens))
	for i, g := range gens {
		clients[i] = apptest.DialWS(b, url, protoTransportWS, apptest.AuthInit(u.Token))
		clients[i].Ack()
		clients[i].Subscribe(fmt.Sprint(i), `subscription($id: ID!) { generationProgress(id: $id) { id } }`, map[string]any{"id": g})
	}
	for i, c := range clients {
		if ev := c.NextEvent(fmt.Sprint(i), 10*time.Second); ev.Kind != "data" {
			b.Fatalf("idle subscription %d: got %s %+v", i, ev.Kind, ev.Errors)
		}
	}
}

func benchMillis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkIdleSubscriptionMemory measures what the server holds for an
// idle subscription, with one socket per subscription (as the shared
// fan-out tool opens them): live heap plus goroutine stacks after garbage
// collection, before and after opening the sockets, divided by their
// number:
//
//	go test -run '^$' -bench IdleSubscriptionMemory ./api/
//
// The clients are raw TCP connections written to by hand, so that they add
// only their file descriptor's few hundred bytes to the figure, which
// counts them too. It reports the goroutines an idle subscription keeps as
// well: none where the socket package parks idle sockets (Linux).
func BenchmarkIdleSubscriptionMemory(b *testing.B) {
	const sockets = 2000
	e := newEnv(b, withSockets(func(s *api.Sockets) {
		s.Limits.SocketsPerUser = -1
	}))
	alice := e.NewUser("alice@example.com", false)
	story := e.story("The Fox", "the-fox")
	gens := e.IDs(`
		INSERT INTO story_generations (user_id, story_id, status)
		SELECT $1, $2, 'in_progress' FROM generate_series(1, $3::int)
		RETURNING id`, alice.ID, story, sockets)
	u, err := url.Parse(e.URL)
	if err != nil {
		b.Fatal(err)
	}
	const query = `subscription($id: ID!) { generationProgress(id: $id) { id status progress } }`
	for b.Loop() {
		before, goroutines := liveBytes(), runtime.NumGoroutine()
		conns := make([]net.Conn, 0, sockets)
		for _, g := range gens {
			conns = append(conns, rawSubscribe(b, u.Host, alice.Token, query, g))
		}
		after := liveBytes()
		b.ReportMetric(float64(after-before)/sockets, "bytes/subscription")
		b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/sockets, "goroutines/subscription")
		for _, c := range conns {
			_ = c.Close()
		}
		waitSocketsGone(b, e)
	}
}

// liveBytes is the heap in use plus goroutine stacks, after collecting.
func liveBytes() uint64 {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// rawSubscribe opens a graphql-transport-ws socket over a bare TCP
// connection, subscribes to gen and reads the snapshot; the connection is
// then left idle, with nothing but its descriptor on the client's side.
func rawSubscribe(b *testing.B, host, token, query, gen string) net.Conn {
	b.Helper()
	conn, err := net.Dial("tcp", host)
	if err != nil {
		b.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /graphql HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n", host)
	r := bufio.NewReaderSize(conn, 1024)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			b.Fatalf("handshake: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	payload, _ := json.Marshal(map[string]any{"query": query, "variables": map[string]any{"id": gen}})
	writeFrame(b, conn, `{"type":"connection_init","payload":{"Authorization":"Bearer `+token+`"}}`)
	if msg := readFrame(b, r); !strings.Contains(msg, "connection_ack") {
		b.Fatalf("got %s, want connection_ack", msg)
	}
	writeFrame(b, conn, `{"type":"subscribe","id":"1","payload":`+string(payload)+`}`)
	if msg := readFrame(b, r); !strings.Contains(msg, `"next"`) {
		b.Fatalf("got %s, want the snapshot", msg)
	}
	_ = conn.SetDeadline(time.Time{})
	return conn
}

// writeFrame writes a client text frame, masked with the all-zero key.
func writeFrame(b *testing.B, w io.Writer, msg string) {
	b.Helper()
	header := []byte{0x81, 0}
	switch n := len(msg); {
	case n < 126:
		header[1] = 0x80 | byte(n)
	default:
		header[1] = 0x80 | 126
		header = binary.BigEndian.AppendUint16(header, uint16(n))
	}
	header = append(header, 0, 0, 0, 0)
	if _, err := w.Write(append(header, msg...)); err != nil {
		b.Fatal(err)
	}
}

// readFrame reads one unfragmented server frame.
func readFrame(b *testing.B, r *bufio.Reader) string {
	b.Helper()
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		b.Fatal(err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			b.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(r, ext[:]); err != nil {
			b.Fatal(err)
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		b.Fatal(err)
	}
	return string(msg)
}

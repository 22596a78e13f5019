package api_test

// Benchmarks of the three operations the peer comparison measures
// (../shared/bench, docs/performance.md), end to end: HTTP, the token, gqlgen,
// the loaders and PostgreSQL under row-level security, on data shaped like
// the comparison's seed (500 stories of 2 KB, a user with 50 generations of
// 3 or 7 log events each among 10,000 generations).
//
//	go test -run '^$' -bench Operation -benchmem ./api/
//	go test -run '^$' -bench 'Operation/Q2' -cpuprofile /tmp/q2.prof ./api/
//
// Each operation runs twice: one request at a time (ns/op is its latency),
// and 16 requests at once (ns/op is the inverse of the throughput).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/narrate/narrate/app/apptest"
)

// The operations, spelt as ../shared/bench/goserver/queries spells them.
const (
	benchQ1 = `query Q1 { stories(first: 50) { nodes { id title slug version } } }`
	benchQ2 = `query Q2 { viewer { generations(first: 20) { nodes { status progress createdAt
		story { title slug } logs(first: 5) { nodes { event occurredAt } } } } } }`
	benchQ3 = `query Q3($slug: String!) { story(slug: $slug) { id title slug version content } }`
)

// seedOperations loads the comparison's data shape, scaled down to 200
// users: user u owns generations g = u, u+200, ... (50 each, newest last),
// generation g narrates story (g + g/200*37) % 500 and has 3 log events, 7
// when g/200 is odd. It returns a token of user 1.
func seedOperations(e *env) string {
	e.t.Helper()
	e.Exec(`INSERT INTO auth.users (id, email)
		SELECT md5('user-' || u)::uuid, 'user' || u || '@bench.test' FROM generate_series(0, 199) u`)
	e.Exec(`INSERT INTO stories (id, title, slug, content, version)
		SELECT md5('story-' || s)::uuid,
		  (ARRAY['The','A','One','Another','That'])[1 + s % 5] || ' ' ||
		  (ARRAY['Brave','Sleepy','Clever','Tiny','Golden','Silent','Curious'])[1 + (s * 3) % 7] || ' ' ||
		  (ARRAY['Fox','Dragon','Lighthouse','Owl','Robot','Garden','River','Moon','Baker','Kite','Whale'])[1 + (s * 7) % 11] || ' #' || s,
		  'story-' || s,
		  left(repeat('Once upon a time, in story ' || s || ', a small voice told a long tale by the fire. ', 40), 2048),
		  1 + s % 3
		FROM generate_series(0, 499) s`)
	e.Exec(`INSERT INTO story_generations (id, user_id, story_id, status, progress, metadata, created_at)
		SELECT md5('gen-' || g)::uuid, md5('user-' || (g % 200))::uuid,
		  md5('story-' || ((g + (g / 200) * 37) % 500))::uuid,
		  (ARRAY['completed','completed','completed','failed','in_progress','pending']::generation_status[])[1 + g % 6],
		  (ARRAY[100, 100, 100, 10, 40, 0])[1 + g % 6],
		  jsonb_build_object('chars', 2048, 'attempt', 1 + g % 2),
		  timestamptz '2025-01-01 00:00:00+00' + g * interval '5 minutes'
		FROM generate_series(0, 9999) g`)
	e.Exec(`INSERT INTO generation_logs (generation_id, event, occurred_at)
		SELECT md5('gen-' || g)::uuid, 'event ' || i,
		  timestamptz '2025-01-01 00:00:00+00' + g * interval '5 minutes' + i * interval '10 seconds'
		FROM generate_series(0, 9999) g, generate_series(1, 7) i
		WHERE i <= 3 OR (g / 200) % 2 = 1`)
	e.Exec(`ANALYZE`)
	var id uuid.UUID
	e.Scan(`SELECT md5('user-1')::uuid`, nil, &id)
	return apptest.MintToken(e.t, user{ID: id, Email: "user1@bench.test"}, false, time.Hour)
}

func BenchmarkOperation(b *testing.B) {
	e := newEnv(b)
	token := seedOperations(e)
	ops := []struct {
		name, token, query string
		vars               map[string]any
		// check fails the benchmark unless the data is the operation's answer.
		check func(b *testing.B, data json.RawMessage)
	}{
		{"Q1", "", benchQ1, nil, func(b *testing.B, data json.RawMessage) {
			var got struct {
				Stories struct {
					Nodes []struct{ ID, Title, Slug string }
				}
			}
			unmarshal(b, data, &got)
			if n := len(got.Stories.Nodes); n != 50 || got.Stories.Nodes[0].Slug == "" {
				b.Fatalf("Q1: %d stories: %s", n, data)
			}
		}},
		{"Q2", token, benchQ2, nil, func(b *testing.B, data json.RawMessage) {
			var got struct {
				Viewer struct {
					Generations struct {
						Nodes []struct {
							Status string
							Story  struct{ Title string }
							Logs   struct{ Nodes []struct{ Event string } }
						}
					}
				}
			}
			unmarshal(b, data, &got)
			nodes := got.Viewer.Generations.Nodes
			if len(nodes) != 20 {
				b.Fatalf("Q2: %d generations: %s", len(nodes), data)
			}
			for _, n := range nodes {
				if n.Status == "" || n.Story.Title == "" || len(n.Logs.Nodes) < 3 {
					b.Fatalf("Q2: incomplete generation %+v", n)
				}
			}
		}},
		{"Q3", token, benchQ3, map[string]any{"slug": "story-42"}, func(b *testing.B, data json.RawMessage) {
			var got struct {
				Story struct{ Slug, Content string }
			}
			unmarshal(b, data, &got)
			if got.Story.Slug != "story-42" || len(got.Story.Content) != 2048 {
				b.Fatalf("Q3: %s", data)
			}
		}},
	}
	for _, op := range ops {
		body, err := json.Marshal(map[string]any{"query": op.query, "variables": op.vars})
		if err != nil {
			b.Fatal(err)
		}
		send := func(b *testing.B, client *http.Client) []byte {
			req, err := http.NewRequest(http.MethodPost, e.URL+"/graphql", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			if op.token != "" {
				req.Header.Set("Authorization", "Bearer "+op.token)
			}
			res, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			raw, err := io.ReadAll(res.Body)
			_ = res.Body.Close()
			if err != nil || res.StatusCode != http.StatusOK {
				b.Fatalf("%s: HTTP %d, %v: %s", op.name, res.StatusCode, err, raw)
			}
			return raw
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		var first response
		if err := json.Unmarshal(send(b, client), &first); err != nil || len(first.Errors) > 0 {
			b.Fatalf("%s: %v %+v", op.name, err, first.Errors)
		}
		op.check(b, first.Data)

		b.Run(op.name+"/c=1", func(b *testing.B) {
			b.ReportAllocs()
			cpu := startCPU(b, e)
			for b.Loop() {
				send(b, client)
			}
			cpu.report(b)
		})
		b.Run(op.name+"/c=16", func(b *testing.B) {
			b.ReportAllocs()
			cpu := startCPU(b, e)
			b.SetParallelism(8) // 8 × GOMAXPROCS (2 here) clients
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					send(b, client)
				}
			})
			cpu.report(b)
		})
	}
}

// cpuMeter measures the CPU time a benchmark used, in this process (server
// and client) and in the PostgreSQL cluster (postmaster and backends), so
// that the figures mean something on a machine other work shares: wall time
// per operation there says more about the neighbours than about the code.
type cpuMeter struct {
	postmaster int
	self, pg   time.Duration
}

func startCPU(b *testing.B, e *env) *cpuMeter {
	b.Helper()
	var dir string
	e.Scan(`SELECT current_setting('data_directory')`, nil, &dir)
	raw, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		b.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(raw), "\n", 2)[0])
	if err != nil {
		b.Fatal(err)
	}
	m := &cpuMeter{postmaster: pid}
	m.self, m.pg = selfCPU(), treeCPU(pid)
	return m
}

// report adds cpu-µs/op (this process) and pg-cpu-µs/op.
func (m *cpuMeter) report(b *testing.B) {
	self, pg := selfCPU()-m.self, treeCPU(m.postmaster)-m.pg
	b.ReportMetric(float64(self.Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(pg.Microseconds())/float64(b.N), "pg-cpu-µs/op")
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// treeCPU is the CPU time of pid and its children so far (Linux /proc;
// backends that exited meanwhile are not counted, and the pool keeps its
// connections for the whole run).
func treeCPU(pid int) time.Duration {
	pids := []int{pid}
	if kids, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid)); err == nil {
		for _, k := range kids {
			raw, _ := os.ReadFile(k)
			for _, f := range strings.Fields(string(raw)) {
				if c, err := strconv.Atoi(f); err == nil {
					pids = append(pids, c)
				}
			}
		}
	}
	var ticks int64
	for _, p := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis; utime and stime
		// are the 14th and 15th of the whole line.
		s := string(raw)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks += u + st
	}
	// USER_HZ is 100 on Linux.
	return time.Duration(ticks) * 10 * time.Millisecond
}

func unmarshal(b *testing.B, data json.RawMessage, v any) {
	b.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		b.Fatalf("decode %s: %v", data, err)
	}
}

package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/db/dbtest"
	"github.com/narrate/narrate/migrations"
)

func TestMain(m *testing.M) { dbtest.Main(m, migrations.Up) }

var testSecret = apptest.Secret

// startServer runs a complete server on d, assembled as `server serve`
// assembles it, and returns its URL.
func startServer(t *testing.T, d *dbtest.DB) string {
	t.Helper()
	return apptest.Start(t, d).URL
}

// TestRunAgainstServer runs the whole tool against a real server and
// database: every update must be delivered, the fixtures removed and every
// socket closed.
func TestRunAgainstServer(t *testing.T) {
	t.Parallel()
	d := dbtest.New(t)
	url := startServer(t, d)

	// A missing sample reads as zero in the summary, so a metric renamed in
	// the server would otherwise pass unnoticed.
	s, err := scrape(context.Background(), httpClient, url)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{
		metricRSS, metricCPU, metricGoroutines, metricHeapInuse, metricStackInuse,
		metricSockets, metricActive, metricDelivered, metricCoalesced, metricDropped,
		metricNotifications, metricNotifyToSend + `_bucket{le="+Inf"}`,
	} {
		if _, err := s.get(name); err != nil {
			t.Errorf("server /metrics: %v", err)
		}
	}

	tests := []struct {
		name      string
		proto     string
		perSocket int
		sockets   string
	}{
		{"graphql-transport-ws", protoTransportWS, 1, "20/20"},
		{"graphql-ws", protoLegacyWS, 1, "20/20"},
		{"four per socket", protoTransportWS, 4, "5/5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run([]string{
				"-url", url, "-db", d.AdminURL, "-secret", string(testSecret),
				"-subs", "20", "-per-socket", strconv.Itoa(tt.perSocket), "-users", "3",
				"-rate", "200", "-duration", "500ms",
				"-proto", tt.proto, "-settle", "100ms", "-drain", "5s",
			}, &out, &errOut)
			if code != 0 {
				t.Fatalf("exit %d: %s\n%s", code, errOut.String(), out.String())
			}
			summary := out.String()
			for _, want := range []string{
				"sockets opened   " + tt.sockets,
				"20 subscriptions on them",
				"snapshots        20/20",
				"committed        100/100",
				"delivered        100/100 (100.00%)",
				"errors 0, completed 0, dropped sockets 0, bad messages 0",
				"server open sockets now 0",
			} {
				if !strings.Contains(summary, want) {
					t.Errorf("summary lacks %q:\n%s", want, summary)
				}
			}
			if m := regexp.MustCompile(`p99 ([0-9.]+)ms`).FindStringSubmatch(summary); m == nil {
				t.Errorf("no p99 latency in:\n%s", summary)
			} else if v, err := strconv.ParseFloat(m[1], 64); err != nil || v <= 0 {
				t.Errorf("p99 %q is not a positive latency", m[1])
			}

			admin, err := pgxpool.New(context.Background(), d.AdminURL)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			var left int
			if err := admin.QueryRow(context.Background(),
				`SELECT (SELECT count(*) FROM auth.users WHERE email LIKE 'loadtest-%')
				      + (SELECT count(*) FROM stories WHERE slug LIKE 'loadtest-%')`).Scan(&left); err != nil {
				t.Fatal(err)
			}
			if left != 0 {
				t.Errorf("%d fixture rows left behind", left)
			}
		})
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	t.Parallel()
	tests := [][]string{
		{"-subs", "0"},
		{"-proto", "sse"},
		{"-per-socket", "0"},
		{"-rate", "-1"},
		{"extra"},
	}
	for _, args := range tests {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (%s)", args, code, errOut.String())
		}
	}
}

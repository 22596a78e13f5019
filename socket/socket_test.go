package socket

import (
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"
)

// The protocol itself is tested end to end, with real clients against the
// real server, in package api (websocket_test.go, subscription_test.go);
// these are the pure helpers' edge cases.

func TestClientAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		remote    string
		forwarded []string
		want      string
	}{
		{"remote client", "203.0.113.9:5123", nil, "203.0.113.9"},
		{"remote client's header is not trusted", "203.0.113.9:5123", []string{"198.51.100.1"}, "203.0.113.9"},
		{"local client without a proxy", "127.0.0.1:5123", nil, ""},
		{"proxy on the same host", "127.0.0.1:5123", []string{"198.51.100.1"}, "198.51.100.1"},
		{"proxy appends the last hop", "[::1]:5123", []string{"10.0.0.1, 198.51.100.1"}, "198.51.100.1"},
		{"several headers, the last counts", "127.0.0.1:5123", []string{"10.0.0.1", "198.51.100.2"}, "198.51.100.2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/graphql", nil)
			r.RemoteAddr = tt.remote
			for _, f := range tt.forwarded {
				r.Header.Add("X-Forwarded-For", f)
			}
			if got := clientAddress(r); got != tt.want {
				t.Fatalf("clientAddress = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSameOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		origin string
		want   bool
	}{
		{"", true},
		{"http://api.example.com:8080", true},
		{"https://API.example.com:8080", true},
		{"https://api.example.com", false},
		{"https://evil.example.com:8080", false},
		{"null", false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "http://api.example.com:8080/graphql", nil)
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if got := SameOrigin(r); got != tt.want {
			t.Errorf("SameOrigin(%q) = %v, want %v", tt.origin, got, tt.want)
		}
	}
}

func TestLimitsDefaults(t *testing.T) {
	t.Parallel()
	got := Limits{SubscriptionsPerSocket: 5, SocketsPerUser: -1}.withDefaults()
	want := Limits{SubscriptionsPerSocket: 5, SocketsPerUser: 0, SocketsPerAddress: DefaultSocketsPerAddress}
	if got != want {
		t.Fatalf("withDefaults = %+v, want %+v", got, want)
	}
}

func TestEncodeAndTruncate(t *testing.T) {
	t.Parallel()
	if got := string(encode(msgNext, `a"b`, []byte(`{"data":1}`))); got != `{"type":"next","id":"a\"b","payload":{"data":1}}` {
		t.Fatalf("encode = %s", got)
	}
	if got := string(encode(msgConnectionAck, "", nil)); got != `{"type":"connection_ack"}` {
		t.Fatalf("encode = %s", got)
	}
	long := strings.Repeat("é", 100)
	cut := truncate(long)
	if len(cut) > 123 || !utf8.ValidString(cut) || !strings.HasPrefix(long, cut) {
		t.Fatalf("truncate gave %d bytes, valid %v", len(cut), utf8.ValidString(cut))
	}
}

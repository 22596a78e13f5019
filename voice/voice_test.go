package voice

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestErrorRetryable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind ErrorKind
		want bool
	}{
		{KindRateLimited, true},
		{KindServer, true},
		{KindNetwork, true},
		{KindVoiceNotFound, false},
		{KindQuota, false},
		{KindUnauthorized, false},
		{KindBadRequest, false},
		{KindOther, false},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			t.Parallel()
			err := fmt.Errorf("synthesize chunk 3: %w", &Error{Kind: tt.kind, Status: 500})
			if got := IsRetryable(err); got != tt.want {
				t.Errorf("IsRetryable(%v) = %v, want %v", err, got, tt.want)
			}
			if got := KindOf(err); got != tt.kind {
				t.Errorf("KindOf() = %v, want %v", got, tt.kind)
			}
		})
	}
}

func TestIsRetryableOther(t *testing.T) {
	t.Parallel()
	if IsRetryable(errors.New("plain")) {
		t.Error("plain error is retryable")
	}
	if IsRetryable(nil) {
		t.Error("nil is retryable")
	}
	canceled := &Error{Kind: KindNetwork, Err: context.Canceled}
	if IsRetryable(canceled) {
		t.Error("a canceled request is retryable")
	}
	timedOut := &Error{Kind: KindNetwork, Err: context.DeadlineExceeded}
	if !IsRetryable(timedOut) {
		t.Error("a request timeout is not retryable")
	}
	if !errors.Is(timedOut, context.DeadlineExceeded) {
		t.Error("Error does not unwrap")
	}
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	err := &Error{Provider: "elevenlabs", Kind: KindRateLimited, Status: 429, Code: "system_busy", Message: "try later"}
	want := "elevenlabs: rate limited (HTTP 429 system_busy): try later"
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	netErr := &Error{Kind: KindNetwork, Err: errors.New("connection refused")}
	if got := netErr.Error(); !strings.Contains(got, "network error") || !strings.Contains(got, "connection refused") {
		t.Errorf("Error() = %q", got)
	}
	if got := ErrorKind(99).String(); got != "ErrorKind(99)" {
		t.Errorf("String() = %q", got)
	}
}

package app

import (
	"context"
	"errors"
	"testing"
)

func TestReadiness(t *testing.T) {
	t.Parallel()
	up := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	tests := []struct {
		name      string
		ping      func(context.Context) error
		listening bool
		ready     bool
	}{
		{"database and listener up", up, true, true},
		{"database down", down, true, false},
		{"listener reconnecting", up, false, false},
		{"both down", down, false, false},
	}
	for _, tt := range tests {
		err := Readiness(tt.ping, func() bool { return tt.listening })(context.Background())
		if (err == nil) != tt.ready {
			t.Errorf("%s: readiness error %v, want ready %v", tt.name, err, tt.ready)
		}
	}
}

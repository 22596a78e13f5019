package auth

import (
	"errors"
	"testing"
)

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		header    string
		wantToken string
		wantOK    bool
		wantErr   bool
	}{
		{header: ""},
		{header: "   "},
		{header: "Bearer abc", wantToken: "abc", wantOK: true},
		{header: "bearer abc", wantToken: "abc", wantOK: true},
		{header: "BEARER abc", wantToken: "abc", wantOK: true},
		{header: "Bearer   abc  ", wantToken: "abc", wantOK: true},
		{header: "Bearer ", wantErr: true},
		{header: "Bearer", wantErr: true},
		{header: "Bearer    ", wantErr: true},
		{header: "Basic x", wantErr: true},
		{header: "abc", wantErr: true},
		{header: "Bearerabc", wantErr: true},
		{header: "Bearer abc def", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			t.Parallel()
			token, ok, err := BearerToken(tt.header)
			if tt.wantErr {
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("BearerToken(%q) error = %v, want ErrInvalidToken", tt.header, err)
				}
				if ok || token != "" {
					t.Errorf("BearerToken(%q) = %q, %v with an error", tt.header, token, ok)
				}
				return
			}
			if err != nil {
				t.Fatalf("BearerToken(%q): %v", tt.header, err)
			}
			if token != tt.wantToken || ok != tt.wantOK {
				t.Errorf("BearerToken(%q) = %q, %v; want %q, %v", tt.header, token, ok, tt.wantToken, tt.wantOK)
			}
		})
	}
}

//go:build tools

// Package tools keeps dependencies that are about to be used pinned in go.mod
// while `gqlgen generate` runs `go mod tidy`.
package tools

import (
	_ "github.com/MicahParks/keyfunc/v3"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/google/uuid"
	_ "github.com/gorilla/websocket"
	_ "github.com/graph-gophers/dataloader/v7"
	_ "github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/pressly/goose/v3"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.uber.org/goleak"
)

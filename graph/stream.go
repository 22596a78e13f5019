package graph

import (
	"context"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// A subscription's stream runs on its own goroutine and reaches gqlgen only
// through its channel, which can carry results but not errors: closing it
// completes the subscription as if all went well. EndStreamsWithErrors and
// endStream carry the error instead. (gqlgen's transport.AddSubscriptionError
// does this on websockets only, and panics on server-sent events.)

type streamEndKey struct{}

// streamEnd holds the error a stream ended with, until it is sent.
type streamEnd struct {
	mu  sync.Mutex
	err *gqlerror.Error
}

// endStream records err as the error the stream of ctx's subscription ends
// with; the stream must close its channel next. Outside
// EndStreamsWithErrors (a resolver called directly) the error is dropped
// and the stream simply completes.
func endStream(ctx context.Context, err *gqlerror.Error) {
	if end, ok := ctx.Value(streamEndKey{}).(*streamEnd); ok {
		end.mu.Lock()
		end.err = err
		end.mu.Unlock()
	}
}

// EndStreamsWithErrors is an operation interceptor (gqlgen's
// AroundOperations): when a subscription's stream ended with an error, the
// client receives a last result carrying that error before the
// subscription completes, on every transport.
func EndStreamsWithErrors(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if op := graphql.GetOperationContext(ctx).Operation; op == nil || op.Operation != ast.Subscription {
		return next(ctx)
	}
	end := &streamEnd{}
	responses := next(context.WithValue(ctx, streamEndKey{}, end))
	return func(ctx context.Context) *graphql.Response {
		if r := responses(ctx); r != nil {
			return r
		}
		end.mu.Lock()
		defer end.mu.Unlock()
		if end.err == nil {
			return nil
		}
		r := &graphql.Response{Errors: gqlerror.List{end.err}}
		end.err = nil
		return r
	}
}

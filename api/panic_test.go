package api_test

import (
	"context"
	"testing"
	"time"

	"github.com/narrate/narrate/app"
	"github.com/narrate/narrate/app/apptest"
	"github.com/narrate/narrate/generation"
	"github.com/narrate/narrate/graph"
)

// poisonedProgress is the progress at which panickyStream panics.
const poisonedProgress = 13

// panickyStream is a stream hook (graph.Resolver.Metrics, which every
// stream calls after handing an event over) that panics on the events at
// poisonedProgress.
type panickyStream struct{ graph.StreamMetrics }

func (p panickyStream) Delivered(e generation.Event) {
	if e.Progress == poisonedProgress {
		panic("stream hook panics")
	}
	p.StreamMetrics.Delivered(e)
}

// TestPanicInStreamEndsThatStreamOnly: a panic in a subscription's stream
// ends that subscription with INTERNAL_SERVER_ERROR, on websockets and on
// server-sent events alike, is counted, and leaves the other streams on
// the same socket and the server serving.
func TestPanicInStreamEndsThatStreamOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, apptest.WithApp(app.WithResolverEdit(func(r *graph.Resolver) {
		r.Metrics = panickyStream{r.Metrics}
	})))
	alice := e.NewUser("alice@example.com", false)
	story := e.story("The Fox", "the-fox")
	bad, good := e.generation(alice, story, generation.InProgress), e.generation(alice, story, generation.InProgress)

	c := apptest.DialWS(t, e.URL, protoTransportWS, apptest.AuthInit(alice.Token))
	c.Ack()
	c.Subscribe("bad", progressQuery, map[string]any{"id": bad})
	c.Subscribe("good", progressQuery, map[string]any{"id": good})
	decodeProgress(t, c.NextEvent("bad", 5*time.Second), "generationProgress")
	decodeProgress(t, c.NextEvent("good", 5*time.Second), "generationProgress")

	e.setProgress(bad, generation.InProgress, poisonedProgress)
	// The hook panics once the event is handed over: the client has it,
	// then the error, then the end of the subscription.
	if p := decodeProgress(t, c.NextEvent("bad", 5*time.Second), "generationProgress"); p.Progress != poisonedProgress {
		t.Fatalf("got %s, want progress %d", p, poisonedProgress)
	}
	if ev := c.NextEvent("bad", 5*time.Second); ev.Kind != "error" {
		t.Fatalf("after the poisoned event: %+v, want the error", ev)
	} else {
		wantInternalError(t, ev.Errors)
	}
	if ev := c.NextEvent("bad", 5*time.Second); ev.Kind != "complete" {
		t.Fatalf("after the error: %+v, want complete", ev)
	}

	e.setProgress(good, generation.InProgress, 50)
	if p := decodeProgress(t, c.NextEvent("good", 5*time.Second), "generationProgress"); p.Progress != 50 {
		t.Fatalf("the other stream got %s, want progress 50", p)
	}
	var out struct{ Viewer struct{ ID string } }
	e.Post(alice.Token, `{ viewer { id } }`, nil).Decode(t, &out)
	if got := e.App.Panics.Count("subscription"); got != 1 {
		t.Errorf("narrate_panics_total{where=subscription} = %v, want 1", got)
	}

	// Server-sent events: the same, with the error in a last result.
	sse := e.generation(alice, story, generation.InProgress)
	next := subscribeSSE(t, e.URL, alice.Token, progressQuery, map[string]any{"id": sse})
	next().progress(t)
	e.setProgress(sse, generation.InProgress, poisonedProgress)
	next().progress(t)
	ev := next()
	if ev.Kind != "next" {
		t.Fatalf("got %+v, want a result with the error", ev)
	}
	wantInternalError(t, ev.Errors)
	if ev := next(); ev.Kind != "complete" {
		t.Fatalf("after the error: %+v, want complete", ev)
	}
	if got := e.App.Panics.Count("subscription"); got != 2 {
		t.Errorf("narrate_panics_total{where=subscription} = %v, want 2", got)
	}
}

// panickyVoices is a voice provider that panics deleting a voice.
type panickyVoices struct{ app.Voice }

func (panickyVoices) DeleteVoice(context.Context, string) error { panic("voice provider panics") }

// TestPanicInResolverIsContained: a panic in a resolver fails that field
// with INTERNAL_SERVER_ERROR, is counted, and the server serves on.
func TestPanicInResolverIsContained(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withVoice(panickyVoices{}))
	alice := e.narrator("alice@example.com")

	res := e.Post(alice.Token, `mutation { deleteVoiceSample }`, nil)
	res.WantCode(t, graph.CodeInternal)
	wantInternalError(t, res.Errors)
	if got := e.App.Panics.Count("graphql"); got != 1 {
		t.Errorf("narrate_panics_total{where=graphql} = %v, want 1", got)
	}
	var out struct {
		Viewer struct{ VoiceSample *struct{ Verified bool } }
	}
	e.Post(alice.Token, `{ viewer { voiceSample { verified } } }`, nil).Decode(t, &out)
	if out.Viewer.VoiceSample == nil {
		t.Error("the sample is gone although its voice was not deleted")
	}
}

// wantInternalError fails unless errs is one bare internal error: the
// panic's value and stack are for the log only.
func wantInternalError(t *testing.T, errs []gqlError) {
	t.Helper()
	if len(errs) != 1 || errs[0].Extensions["code"] != graph.CodeInternal || errs[0].Message != "internal server error" {
		t.Fatalf("errors %+v, want one INTERNAL_SERVER_ERROR", errs)
	}
}

package worker

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/narrate/narrate/backoff"
	"github.com/narrate/narrate/db"
	"github.com/narrate/narrate/voice"
)

// errShutdownTimeout cancels a job whose current chunk did not finish
// within ShutdownGrace after shutdown began.
var errShutdownTimeout = errors.New("shutdown grace period over")

// errShuttingDown reports that shutdown began while the job was between
// steps (waiting to retry), so it should be released now.
var errShuttingDown = errors.New("worker shutting down")

// releaseTimeout bounds the release of a generation at shutdown. If the
// database does not answer in time the lease simply expires.
const releaseTimeout = 5 * time.Second

// failure is a reason to end the generation as FAILED. Its text goes into
// the generation's log, which its owner reads: it carries provider errors
// (which hold no credentials or payloads) but never database or file
// system details.
type failure struct{ reason string }

func (f *failure) Error() string { return f.reason }

func failf(format string, args ...any) error { return &failure{reason: fmt.Sprintf(format, args...)} }

// process works on one claimed generation until it is completed, failed,
// cancelled, released or abandoned.
func (w *Worker) process(runCtx context.Context, job db.Job) {
	log := w.logger.With("generation", job.Generation.ID, "attempt", job.Attempt, "owner", job.Owner)
	log.InfoContext(runCtx, "generation claimed", "story_version", job.StoryVersion)

	// The job's context outlives runCtx: at shutdown the chunk in flight
	// may finish, for up to ShutdownGrace. It is cancelled early when the
	// lease turns out to be lost.
	jobCtx, cancelJob := context.WithCancelCause(context.WithoutCancel(runCtx))
	defer cancelJob(nil)
	stopGrace := context.AfterFunc(runCtx, func() {
		t := time.AfterFunc(w.grace, func() { cancelJob(errShutdownTimeout) })
		context.AfterFunc(jobCtx, func() { t.Stop() })
	})
	defer stopGrace()

	// Once the job writes its end (completed or failed), a renewal that
	// finds the lease gone only means that write committed; cancelling the
	// job then would lose the write's answer and make a completion look
	// lost, and its audio be deleted.
	finishing := new(atomic.Bool)
	jobCtx = context.WithValue(jobCtx, finishingKey{}, finishing)
	leaseCtx, stopLease := context.WithCancel(jobCtx)
	var renewing sync.WaitGroup
	renewing.Go(func() {
		w.keepLease(leaseCtx, func(err error) {
			if !finishing.Load() {
				cancelJob(err)
			}
		}, job.Generation.ID, job.Owner, log)
	})

	outcome := w.narrate(runCtx, jobCtx, job, log)
	stopLease()
	renewing.Wait()
	w.metrics.finished(outcome)
	log.InfoContext(jobCtx, "generation done", "outcome", outcome)
}

// finishingKey carries, in a job's context, the flag set once the job
// writes its end.
type finishingKey struct{}

// markFinishing records that the job of ctx is writing its end.
func markFinishing(ctx context.Context) {
	if f, ok := ctx.Value(finishingKey{}).(*atomic.Bool); ok {
		f.Store(true)
	}
}

// maxStitched is how many earlier request ids a synthesis request carries:
// the most any provider uses (ElevenLabs accepts three).
const maxStitched = 3

// narrate runs the steps of one generation and returns how it ended.
//
// Memory does not grow with the story: each chunk's audio is stored as a
// part of its own as soon as it is made (and announced, so listeners can
// play it), and the final file is then streamed from the stored parts into
// storage. Only the small description of each part stays in memory.
func (w *Worker) narrate(runCtx, jobCtx context.Context, job db.Job, log *slog.Logger) Outcome {
	id := job.Generation.ID
	if len(job.StaleParts) > 0 {
		w.deleteAudio(log, job.StaleParts...)
	}
	if job.Attempt > maxAttempts {
		return w.fail(jobCtx, job, log, fmt.Sprintf("gave up after %d attempts: each worker stopped before finishing", job.Attempt-1))
	}
	if job.VoiceID == "" {
		return w.fail(jobCtx, job, log, "the owner has no verified voice sample")
	}
	chunks := splitText(job.Content, w.provider.ChunkLimit())
	if len(chunks) == 0 {
		return w.fail(jobCtx, job, log, "the story has no text to narrate")
	}

	// Keys are unique per attempt, so an attempt never overwrites the
	// parts or the result of another.
	base := fmt.Sprintf("generations/%s-%s", id, strings.ToLower(rand.Text()[:10]))
	parts := make([]voice.Part, 0, len(chunks))
	keys := make([]string, 0, len(chunks))
	var previous []string
	for i := range chunks {
		// A cancel is noticed here at the latest: the write after the
		// previous chunk fails once the generation is no longer ours.
		if runCtx.Err() != nil {
			return w.release(job, log)
		}
		part, key, err := w.narrateChunk(runCtx, jobCtx, job, log, base, i, chunks, previous)
		if err != nil {
			return w.stopped(jobCtx, job, log, err)
		}
		parts, keys = append(parts, part.Part), append(keys, key)
		if part.requestID != "" {
			previous = append(previous, part.requestID)
			previous = previous[max(0, len(previous)-maxStitched):]
		}
	}

	key := base + "." + parts[0].Extension
	size, err := w.putJoined(jobCtx, log, key, parts, keys)
	if err != nil {
		return w.stopped(jobCtx, job, log, err)
	}
	meta := map[string]any{
		"provider":     w.provider.Name(),
		"chunks":       len(chunks),
		"characters":   utf8.RuneCountInString(job.Content),
		"content_type": parts[0].ContentType,
		"audio_bytes":  size,
	}
	markFinishing(jobCtx)
	err = w.persist(jobCtx, log, "complete generation", func(ctx context.Context) error {
		return w.queue.Complete(ctx, id, job.Owner, key, meta)
	})
	if err != nil {
		// Only a definite "not yours" proves the key unused; after any
		// other error the completion may have committed, and deleting the
		// audio would break a finished generation.
		if errors.Is(err, db.ErrLeaseLost) {
			w.deleteAudio(log, key)
		}
		return w.stopped(jobCtx, job, log, err)
	}
	return OutcomeCompleted
}

// storedPart is a chunk's part once stored.
type storedPart struct {
	voice.Part
	requestID string
}

// narrateChunk synthesises chunk i, stores its audio as a part under base
// and records the part with the generation's progress.
func (w *Worker) narrateChunk(runCtx, jobCtx context.Context, job db.Job, log *slog.Logger, base string, i int, chunks []chunk, previous []string) (storedPart, string, error) {
	n := len(chunks)
	audio, err := w.synthesize(runCtx, jobCtx, job, log, i, n, chunks[i].Text, previous)
	if err != nil {
		return storedPart{}, "", err
	}
	data, part, err := voice.PreparePart(audio, i)
	if err != nil {
		log.ErrorContext(jobCtx, "prepare audio part", "chunk", i+1, "err", err)
		return storedPart{}, "", failf("chunk %d/%d: the provider's audio could not be used", i+1, n)
	}
	key := fmt.Sprintf("%s/part-%04d.%s", base, i+1, part.Extension)
	if err := w.put(jobCtx, log, key, part.ContentType, func() io.ReadCloser { return io.NopCloser(bytes.NewReader(data)) }); err != nil {
		return storedPart{}, "", err
	}
	rec := db.NewPart{
		Index: i, StorageKey: key, ContentType: part.ContentType, ByteSize: part.Size,
		CharStart: chunks[i].Start, CharEnd: chunks[i].End,
	}
	if part.Duration > 0 {
		ms := int(part.Duration.Milliseconds())
		rec.DurationMS = &ms
	}
	progress := min(99, (i+1)*100/n)
	event := fmt.Sprintf("chunk %d/%d", i+1, n)
	err = w.persist(jobCtx, log, "record part", func(ctx context.Context) error {
		return w.queue.RecordPart(ctx, job.Generation.ID, job.Owner, rec, progress, event)
	})
	if err != nil {
		if errors.Is(err, db.ErrLeaseLost) {
			w.deleteAudio(log, key)
		}
		return storedPart{}, "", err
	}
	return storedPart{Part: part, requestID: audio.RequestID}, key, nil
}

// chunk is a piece of the story sent to the provider in one request.
type chunk struct {
	Text string
	// Start and End are the characters (runes) of the story it holds:
	// [Start, End).
	Start, End int
}

// splitText chunks text for the provider, dropping whitespace-only chunks,
// which have nothing to say.
func splitText(text string, limit int) []chunk {
	var out []chunk
	pos := 0
	for _, c := range voice.Chunk(text, limit) {
		n := utf8.RuneCountInString(c)
		if strings.TrimSpace(c) != "" {
			out = append(out, chunk{Text: c, Start: pos, End: pos + n})
		}
		pos += n
	}
	return out
}

// synthesize narrates chunk i of n, retrying retryable provider failures
// with backoff and logging each retry on the generation.
func (w *Worker) synthesize(runCtx, jobCtx context.Context, job db.Job, log *slog.Logger, i, n int, text string, previous []string) (*voice.Audio, error) {
	name := w.provider.Name()
	req := voice.SynthesisRequest{VoiceID: job.VoiceID, Text: text, PreviousRequestIDs: previous}
	for retry := 0; ; retry++ {
		start := time.Now()
		audio, err := w.provider.Synthesize(jobCtx, req)
		if err == nil {
			w.metrics.chunk(name, time.Since(start).Seconds())
			return audio, nil
		}
		if jobCtx.Err() != nil {
			return nil, context.Cause(jobCtx)
		}
		w.metrics.providerError(name, err)
		if !voice.IsRetryable(err) {
			log.WarnContext(jobCtx, "synthesis failed; not retrying", "chunk", i+1, "err", err)
			return nil, failf("chunk %d/%d: %v", i+1, n, err)
		}
		if retry >= w.retry.MaxRetries {
			return nil, failf("chunk %d/%d: gave up after %d retries: %v", i+1, n, retry, err)
		}
		delay := w.retry.delay(retry+1, err)
		event := fmt.Sprintf("retry %d/%d of chunk %d/%d in %v: %v", retry+1, w.retry.MaxRetries, i+1, n, delay.Round(time.Millisecond), err)
		log.WarnContext(jobCtx, "synthesis failed; retrying", "chunk", i+1, "retry", retry+1, "delay", delay, "err", err)
		err = w.persist(jobCtx, log, "log retry", func(ctx context.Context) error {
			return w.queue.Log(ctx, job.Generation.ID, job.Owner, event)
		})
		if err != nil {
			return nil, err
		}
		// A shutdown cuts the wait short: the generation is released
		// rather than held through a long backoff.
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-runCtx.Done():
			t.Stop()
			return nil, errShuttingDown
		case <-jobCtx.Done():
			t.Stop()
			return nil, context.Cause(jobCtx)
		}
	}
}

// put stores the body that open makes under key, retrying a few times: a
// full disk or an object store hiccup may pass. open is called once per
// attempt, and the body it makes is closed after the attempt.
func (w *Worker) put(ctx context.Context, log *slog.Logger, key, contentType string, open func() io.ReadCloser) error {
	for attempt := 1; ; attempt++ {
		body := open()
		err := w.store.Put(ctx, key, body, contentType)
		_ = body.Close()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if errors.Is(err, voice.ErrJoin) {
			log.ErrorContext(ctx, "join audio", "key", key, "err", err)
			return failf("the provider's audio chunks could not be joined")
		}
		log.WarnContext(ctx, "store audio", "key", key, "attempt", attempt, "err", err)
		if attempt > w.retry.MaxRetries {
			return failf("the audio could not be stored")
		}
		if !backoff.Sleep(ctx, w.retry.Backoff.Delay(attempt)) {
			return context.Cause(ctx)
		}
	}
}

// putJoined streams the joined file of the stored parts (under keys) into
// storage under key and returns its size. The parts are read one at a time
// and written through a pipe, so neither this process nor the store holds
// the whole narration: a local store appends to a file, an S3 store uploads
// it in parts.
func (w *Worker) putJoined(ctx context.Context, log *slog.Logger, key string, parts []voice.Part, keys []string) (int64, error) {
	var size atomic.Int64
	err := w.put(ctx, log, key, parts[0].ContentType, func() io.ReadCloser {
		pr, pw := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			counted := &countingWriter{w: pw}
			err := voice.WriteJoined(counted, parts, func(i int) (io.ReadCloser, error) {
				r, _, err := w.store.Open(ctx, keys[i])
				return r, err
			})
			size.Store(counted.n)
			pw.CloseWithError(err)
		}()
		return &joinedBody{PipeReader: pr, done: done}
	})
	return size.Load(), err
}

// joinedBody is the reading end of a join in progress. Closing it stops
// the join, if the store gave up reading, and waits for it to end.
type joinedBody struct {
	*io.PipeReader
	done chan struct{}
}

func (b *joinedBody) Close() error {
	err := b.PipeReader.Close()
	<-b.done
	return err
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// deleteAudio deletes stored audio that no generation uses, logging
// failures: a leftover object wastes space but harms nobody.
func (w *Worker) deleteAudio(log *slog.Logger, keys ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), dbTimeout)
	defer cancel()
	for _, key := range keys {
		if err := w.store.Delete(ctx, key); err != nil {
			log.WarnContext(ctx, "delete unused audio", "key", key, "err", err)
		}
	}
}

// stopped turns the error that ended the steps into the generation's end.
func (w *Worker) stopped(jobCtx context.Context, job db.Job, log *slog.Logger, err error) Outcome {
	var f *failure
	switch {
	case errors.As(err, &f):
		return w.fail(jobCtx, job, log, f.reason)
	case errors.Is(err, db.ErrLeaseLost), errors.Is(context.Cause(jobCtx), db.ErrLeaseLost):
		// The user cancelled (and the cancel logged itself), or another
		// worker owns the generation now: write nothing more.
		log.InfoContext(jobCtx, "generation cancelled or taken over; stopped")
		return OutcomeCanceled
	case errors.Is(err, errShuttingDown), errors.Is(context.Cause(jobCtx), errShutdownTimeout):
		return w.release(job, log)
	default:
		log.ErrorContext(jobCtx, "stopped working on the generation; it is reclaimed when its lease expires", "err", err)
		return OutcomeAbandoned
	}
}

// fail ends the generation as FAILED with reason.
func (w *Worker) fail(ctx context.Context, job db.Job, log *slog.Logger, reason string) Outcome {
	log.WarnContext(ctx, "generation failed", "reason", reason)
	markFinishing(ctx)
	err := w.persist(ctx, log, "fail generation", func(ctx context.Context) error {
		return w.queue.Fail(ctx, job.Generation.ID, job.Owner, reason)
	})
	switch {
	case err == nil:
		return OutcomeFailed
	case errors.Is(err, db.ErrLeaseLost):
		return OutcomeCanceled
	default:
		log.ErrorContext(ctx, "could not record the failure; the generation is reclaimed when its lease expires", "err", err)
		return OutcomeAbandoned
	}
}

// release hands the generation back to the queue at shutdown. It runs on a
// fresh context, since the job's may be cancelled by now.
func (w *Worker) release(job db.Job, log *slog.Logger) Outcome {
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	err := w.persist(ctx, log, "release generation", func(ctx context.Context) error {
		return w.queue.Release(ctx, job.Generation.ID, job.Owner, "worker shutting down")
	})
	switch {
	case err == nil:
		return OutcomeReleased
	case errors.Is(err, db.ErrLeaseLost):
		return OutcomeCanceled
	default:
		log.WarnContext(ctx, "could not release the generation; it is reclaimed when its lease expires", "err", err)
		return OutcomeAbandoned
	}
}

// persist runs a database write until it succeeds, the lease is lost, or
// ctx ends, backing off while the database is unreachable. An outage
// therefore pauses the job instead of losing it; a lease that expired
// meanwhile is still ours unless another worker claimed the generation,
// which the next write tells.
func (w *Worker) persist(ctx context.Context, log *slog.Logger, what string, op func(context.Context) error) error {
	for failures := 1; ; failures++ {
		opCtx, cancel := context.WithTimeout(ctx, dbTimeout)
		err := op(opCtx)
		cancel()
		switch {
		case err == nil:
			if failures > 1 {
				log.InfoContext(ctx, "database reachable again", "op", what, "failures", failures-1)
			}
			return nil
		case errors.Is(err, db.ErrLeaseLost):
			return err
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case permanent(err):
			return fmt.Errorf("%s: %w", what, err)
		}
		delay := w.dbBackoff.Delay(failures)
		if failures == 1 || failures%10 == 0 {
			log.WarnContext(ctx, what+" failed; retrying", "err", err, "failures", failures, "retry_in", delay)
		}
		if !backoff.Sleep(ctx, delay) {
			return context.Cause(ctx)
		}
	}
}

// permanent reports database errors that retrying cannot fix.
func permanent(err error) bool {
	return errors.Is(err, db.ErrInvalid) || errors.Is(err, db.ErrForbidden) ||
		errors.Is(err, db.ErrConflict) || errors.Is(err, db.ErrNotFound)
}

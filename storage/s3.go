package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// DefaultS3Region is the signing region used when S3Config.Region is empty.
const DefaultS3Region = "us-east-1"

// S3Config configures an S3 store.
type S3Config struct {
	// Endpoint is the service's base URL, http or https. It may carry a
	// path, as Supabase Storage's does
	// ("https://<project-ref>.storage.supabase.co/storage/v1/s3").
	Endpoint string
	// Region is the signing region; empty means DefaultS3Region. Supabase
	// expects the project's region.
	Region string
	// Bucket is an existing bucket. It should stay private: audio is
	// served through Handler with signed links, never from the bucket.
	Bucket string
	// Prefix, when set, is prepended (with a slash) to every key, so that
	// several deployments or kinds of object can share a bucket.
	Prefix          string
	AccessKeyID     string
	SecretAccessKey string
	// PathStyle addresses the bucket as the first path segment
	// (endpoint/bucket/key) instead of a host name (bucket.endpoint/key).
	// Supabase and MinIO need it.
	PathStyle bool
}

// S3 is a Store in a bucket of an S3-compatible object store, such as AWS
// S3, Supabase Storage, MinIO or Cloudflare R2.
//
// It uses the AWS SDK rather than minio-go because minio-go refuses
// endpoints with a path, and Supabase Storage's S3 endpoint has one.
type S3 struct {
	client   *s3.Client
	bucket   string
	prefix   string
	partSize int
}

var _ Store = (*S3)(nil)

// NewS3 returns a Store in cfg.Bucket, after checking that the bucket
// exists and the credentials may list it, so that a misconfiguration is
// reported at start rather than at the first narration.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("s3 storage: endpoint %q is not an absolute http(s) URL", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("s3 storage: no bucket")
	}
	if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		return nil, errors.New("s3 storage: the access key ID and secret access key are required")
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := ValidateKey(prefix); err != nil {
			return nil, fmt.Errorf("s3 storage: prefix: %w", err)
		}
		prefix += "/"
	}
	region := cfg.Region
	if region == "" {
		region = DefaultS3Region
	}
	creds := aws.Credentials{
		AccessKeyID:     cfg.AccessKeyID,
		SecretAccessKey: cfg.SecretAccessKey,
		Source:          "narrate configuration",
	}
	client := s3.New(s3.Options{
		BaseEndpoint: aws.String(strings.TrimRight(cfg.Endpoint, "/")),
		Region:       region,
		UsePathStyle: cfg.PathStyle,
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return creds, nil
		}),
		// Since 2025 the SDK adds CRC checksums to every upload by
		// default, sent as trailers in aws-chunked bodies, which several
		// S3-compatible services reject. Checksums only where the API
		// requires them work everywhere.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	s := &S3{client: client, bucket: cfg.Bucket, prefix: prefix, partSize: partSize}
	if err := s.check(ctx); err != nil {
		return nil, fmt.Errorf("s3 storage: bucket %q at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	return s, nil
}

// check lists at most one object under the prefix. Unlike HeadBucket,
// whose errors have no body, a listing's error names its cause
// (SignatureDoesNotMatch, NoSuchBucket, ...).
func (s *S3) check(ctx context.Context) error {
	_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  aws.String(s.bucket),
		Prefix:  aws.String(s.prefix),
		MaxKeys: aws.Int32(1),
	})
	if err == nil {
		return nil
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("the bucket does not exist: %w", err)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch":
			return fmt.Errorf("credentials refused, check the access key ID and secret access key: %w", err)
		case "AccessDenied", "Forbidden":
			return fmt.Errorf("access denied, check that the credentials may list and write the bucket: %w", err)
		case "AuthorizationHeaderMalformed", "InvalidRegion", "PermanentRedirect":
			return fmt.Errorf("check the region and endpoint: %w", err)
		}
	}
	return err
}

// partSize is the size of the parts in which Put uploads a stream that
// cannot seek: S3 wants at least 5 MiB in every part but the last, and one
// part is all Put holds in memory.
const partSize = 8 << 20

// Put uploads r as the object for key with contentType (derived from the
// key when empty). An S3 PUT (or the completion of a multipart upload)
// replaces the object atomically, so readers see the old object or the
// new one, never a part. A seekable body is sent in one request. A body
// that cannot seek, such as a narration streamed as it is joined, is read
// one part at a time: a body of at most one part is sent in one request,
// a longer one as a multipart upload, so memory use does not grow with the
// object.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	if contentType == "" {
		contentType = ContentTypeByKey(key)
	}
	var err error
	if body, ok := r.(io.ReadSeeker); ok {
		err = s.putObject(ctx, key, body, contentType)
	} else {
		err = s.putStream(ctx, key, &ctxReader{ctx: ctx, r: r}, contentType)
	}
	if err != nil {
		return fmt.Errorf("put %q: %w", key, err)
	}
	return nil
}

func (s *S3) putObject(ctx context.Context, key string, body io.ReadSeeker, contentType string) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(s.prefix + key),
		Body:        body,
		ContentType: aws.String(contentType),
	})
	return err
}

// putStream uploads r in parts of s.partSize bytes.
func (s *S3) putStream(ctx context.Context, key string, r io.Reader, contentType string) error {
	buf := make([]byte, s.partSize)
	n, err := io.ReadFull(r, buf)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return s.putObject(ctx, key, bytes.NewReader(buf[:n]), contentType)
	}
	if err != nil {
		return err
	}
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(s.bucket),
		Key:         aws.String(s.prefix + key),
		ContentType: aws.String(contentType),
	})
	if err != nil {
		return fmt.Errorf("start multipart upload: %w", err)
	}
	completed := false
	defer func() {
		if completed {
			return
		}
		// An upload left open keeps its parts, billed, until a lifecycle
		// rule removes them; abort it even when ctx has ended.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: up.Key, UploadId: up.UploadId,
		})
	}()
	var parts []types.CompletedPart
	for num := int32(1); n > 0; num++ {
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(s.bucket), Key: up.Key, UploadId: up.UploadId,
			PartNumber: aws.Int32(num), Body: bytes.NewReader(buf[:n]),
		})
		if err != nil {
			return fmt.Errorf("upload part %d: %w", num, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)})
		if n < len(buf) {
			break
		}
		n, err = io.ReadFull(r, buf)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: up.Key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	completed = true
	return nil
}

// abortTimeout bounds the abort of a failed multipart upload.
const abortTimeout = 30 * time.Second

// Open starts downloading the object for key. The returned reader seeks
// without a request and fetches from the new offset with a ranged GET on
// the next Read, so http.ServeContent's range requests download only the
// bytes they serve; the common case, reading from the start, costs one GET.
// Every later GET is conditional on the first one's ETag, so a reader
// never mixes two versions of an object. The reader uses ctx for those
// requests and is not safe for concurrent use.
func (s *S3) Open(ctx context.Context, key string) (io.ReadSeekCloser, ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("open %q: %w", key, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if isNoSuchKey(err) {
		return nil, ObjectInfo{}, fmt.Errorf("open %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("open %q: %w", key, err)
	}
	if out.ContentLength == nil {
		_ = out.Body.Close()
		return nil, ObjectInfo{}, fmt.Errorf("open %q: the response has no content length", key)
	}
	info := ObjectInfo{
		Key:         key,
		Size:        *out.ContentLength,
		ContentType: aws.ToString(out.ContentType),
		ModTime:     aws.ToTime(out.LastModified),
	}
	if info.ContentType == "" {
		info.ContentType = ContentTypeByKey(key)
	}
	return &s3Object{
		ctx:  ctx,
		s:    s,
		key:  key,
		etag: aws.ToString(out.ETag),
		size: info.Size,
		body: out.Body,
	}, info, nil
}

// Delete removes the object for key. S3 answers success for a missing
// object; a service that answers NoSuchKey instead is treated alike.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(s.prefix + key),
	})
	if err != nil && !isNoSuchKey(err) {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	return nil
}

// isNoSuchKey reports whether err says the object is absent. A missing
// bucket is deliberately not included: that is a configuration error, not
// a missing object.
func isNoSuchKey(err error) bool {
	if err == nil {
		return false
	}
	var noSuchKey *types.NoSuchKey
	if errors.As(err, &noSuchKey) {
		return true
	}
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchKey" || apiErr.ErrorCode() == "NotFound")
}

// errObjectClosed is returned by reads and seeks after Close.
var errObjectClosed = errors.New("s3 object is closed")

// s3Object reads an object as an io.ReadSeekCloser over S3 GETs.
type s3Object struct {
	ctx  context.Context
	s    *S3
	key  string // without the store's prefix
	etag string
	size int64

	pos    int64         // offset of the next Read
	body   io.ReadCloser // open response body, or nil
	bodyAt int64         // offset body reads next
	closed bool
}

func (o *s3Object) Read(p []byte) (int, error) {
	if o.closed {
		return 0, errObjectClosed
	}
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if o.body != nil && o.bodyAt != o.pos {
		_ = o.body.Close()
		o.body = nil
	}
	if o.body == nil {
		body, err := o.getFrom(o.pos)
		if err != nil {
			return 0, err
		}
		o.body, o.bodyAt = body, o.pos
	}
	n, err := o.body.Read(p)
	o.pos += int64(n)
	o.bodyAt += int64(n)
	if errors.Is(err, io.EOF) && o.pos < o.size {
		// The body ended early: report it rather than a short object.
		err = fmt.Errorf("read %q: %w", o.key, io.ErrUnexpectedEOF)
	}
	return n, err
}

// getFrom fetches the object from offset to its end, provided it is still
// the version Open saw.
func (o *s3Object) getFrom(offset int64) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{
		Bucket: aws.String(o.s.bucket),
		Key:    aws.String(o.s.prefix + o.key),
		Range:  aws.String("bytes=" + strconv.FormatInt(offset, 10) + "-"),
	}
	if o.etag != "" {
		in.IfMatch = aws.String(o.etag)
	}
	out, err := o.s.client.GetObject(o.ctx, in)
	if err != nil {
		return nil, fmt.Errorf("read %q from byte %d: %w", o.key, offset, err)
	}
	return out.Body, nil
}

func (o *s3Object) Seek(offset int64, whence int) (int64, error) {
	if o.closed {
		return 0, errObjectClosed
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = o.pos + offset
	case io.SeekEnd:
		abs = o.size + offset
	default:
		return 0, fmt.Errorf("seek %q: invalid whence %d", o.key, whence)
	}
	if abs < 0 {
		return 0, fmt.Errorf("seek %q: negative position %d", o.key, abs)
	}
	o.pos = abs
	return abs, nil
}

// Close releases the open response body, if any. It may be called more
// than once.
func (o *s3Object) Close() error {
	o.closed = true
	if o.body == nil {
		return nil
	}
	err := o.body.Close()
	o.body = nil
	return err
}

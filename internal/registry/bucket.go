package registry

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The platform's other key-value buckets (the live apps', internal/appstore) are created and
// looked after the way the registry's is, with the same patience for a JetStream that is not
// ready yet.

// EnsureBucket creates the bucket kvc describes, or updates it to kvc, waiting out a JetStream
// that cannot take it yet (a cluster still electing its leader) for up to bucketReadyTimeout or
// ctx's deadline. It returns the bucket with its stream's creation time: a bucket deleted and
// created again by anyone has a new one.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, kvc jetstream.KeyValueConfig) (jetstream.KeyValue, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, bucketReadyTimeout)
	defer cancel()
	for {
		kv, created, err := ensureOnce(ctx, js, kvc)
		if err == nil {
			return kv, created, nil
		}
		if !transient(err) {
			return nil, time.Time{}, err
		}
		select {
		case <-ctx.Done():
			return nil, time.Time{}, fmt.Errorf("%w (waited for JetStream)", err)
		case <-time.After(checkRetry):
		}
	}
}

func ensureOnce(ctx context.Context, js jetstream.JetStream, kvc jetstream.KeyValueConfig) (jetstream.KeyValue, time.Time, error) {
	return ensureKV(ctx, js, kvc, "bucket")
}

// ensureKV creates the bucket kvc describes, or updates it to kvc, once; what names the bucket in
// errors. A bucket that is already as kvc says is only looked up: every process of the platform
// ensures the buckets it uses when it starts and whenever NATS comes back, and concurrent updates
// of one stream race inside nats-server (nats-io/nats-server#8171, a data race the race detector
// reports in tests that embed the server).
func ensureKV(ctx context.Context, js jetstream.JetStream, kvc jetstream.KeyValueConfig, what string) (jetstream.KeyValue, time.Time, error) {
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	if kv, err := js.KeyValue(cctx, kvc.Bucket); err == nil {
		if st, err := kv.Status(cctx); err == nil {
			if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo() != nil && kvUpToDate(bs.StreamInfo().Config, kvc) {
				return kv, created(st), nil
			}
		}
	}
	kv, err := js.CreateOrUpdateKeyValue(cctx, kvc)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("creating %s %q (%d replicas): %w", what, kvc.Bucket, kvc.Replicas, err)
	}
	st, err := kv.Status(cctx)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("reading %s %q: %w", what, kvc.Bucket, err)
	}
	return kv, created(st), nil
}

// kvUpToDate reports whether a bucket's stream sc already has what kvc sets, as nats.go's
// CreateOrUpdateKeyValue would write it (0 for no limit is -1, no history is 1, no replicas 1).
// Only the settings Plato's buckets use are compared: any other difference is made by hand, and
// the update would not undo it either.
func kvUpToDate(sc jetstream.StreamConfig, kvc jetstream.KeyValueConfig) bool {
	orNone := func(v int64) int64 {
		if v == 0 {
			return -1
		}
		return v
	}
	compression := jetstream.NoCompression
	if kvc.Compression {
		compression = jetstream.S2Compression
	}
	return sc.Description == kvc.Description &&
		sc.MaxMsgsPerSubject == int64(max(kvc.History, 1)) &&
		sc.MaxAge == kvc.TTL &&
		int64(sc.MaxMsgSize) == orNone(int64(kvc.MaxValueSize)) &&
		sc.MaxBytes == orNone(kvc.MaxBytes) &&
		sc.Storage == kvc.Storage &&
		sc.Replicas == max(kvc.Replicas, 1) &&
		sc.Compression == compression &&
		sc.AllowMsgTTL == (kvc.LimitMarkerTTL != 0) &&
		sc.SubjectDeleteMarkerTTL == kvc.LimitMarkerTTL
}

// BucketCreated is the creation time of kv's stream, read from the server (bounded by
// checkTimeout): an error wrapping jetstream.ErrBucketNotFound or ErrStreamNotFound says it is
// gone.
func BucketCreated(ctx context.Context, kv jetstream.KeyValue) (time.Time, error) {
	cctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	st, err := kv.Status(cctx)
	if err != nil {
		return time.Time{}, err
	}
	return created(st), nil
}

// AutoReplicas is how many servers keep a bucket configured with n replicas: n, or for 0, 3 when
// nc is connected to a cluster and 1 to a lone server (ADR 0002).
func AutoReplicas(nc *nats.Conn, n int) int {
	if n > 0 {
		return n
	}
	if nc.ConnectedClusterName() != "" {
		return 3
	}
	return 1
}

package registry

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A bucket created from a configuration is up to date with it, so a process that ensures it again
// only looks it up; a bucket that differs in any setting Plato's buckets use is updated. Both the
// registry's kind of bucket (memory, a TTL with limit markers) and the apps' (file, a value size)
// are checked against what the server keeps.
func TestEnsureUpdatesOnlyABucketThatDiffers(t *testing.T) {
	js := startNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	configs := []jetstream.KeyValueConfig{
		{Bucket: "reg", Description: "registry-like", History: 1, TTL: 5 * time.Second, LimitMarkerTTL: 5 * time.Second, Storage: jetstream.MemoryStorage},
		{Bucket: "apps", Description: "apps-like", History: 1, MaxValueSize: 64 << 10, Storage: jetstream.FileStorage, Replicas: 1},
	}
	for _, kvc := range configs {
		if _, _, err := EnsureBucket(ctx, js, kvc); err != nil {
			t.Fatalf("%s: %v", kvc.Bucket, err)
		}
		sc := streamConfig(ctx, t, js, kvc.Bucket)
		if !kvUpToDate(sc, kvc) {
			t.Fatalf("%s: a bucket just made from its configuration is not up to date with it: %+v", kvc.Bucket, sc)
		}
		changes := map[string]func(c *jetstream.KeyValueConfig){
			"description": func(c *jetstream.KeyValueConfig) { c.Description += " now" },
			"history":     func(c *jetstream.KeyValueConfig) { c.History = 2 },
			"ttl": func(c *jetstream.KeyValueConfig) {
				c.TTL = 7 * time.Second
				if c.LimitMarkerTTL != 0 { // message TTLs, once on, cannot be turned off
					c.LimitMarkerTTL = c.TTL
				}
			},
			"value size": func(c *jetstream.KeyValueConfig) { c.MaxValueSize = 1024 },
			"bytes":      func(c *jetstream.KeyValueConfig) { c.MaxBytes = 1 << 20 },
		}
		for what, change := range changes {
			next := kvc
			change(&next)
			if kvUpToDate(sc, next) {
				t.Errorf("%s: a bucket is up to date with a configuration with another %s", kvc.Bucket, what)
			}
			// Ensuring the changed configuration updates the bucket, after which it is up to date.
			if _, _, err := EnsureBucket(ctx, js, next); err != nil {
				t.Fatalf("%s with another %s: %v", kvc.Bucket, what, err)
			}
			if got := streamConfig(ctx, t, js, kvc.Bucket); !kvUpToDate(got, next) {
				t.Errorf("%s: ensured with another %s, the bucket did not change: %+v", kvc.Bucket, what, got)
			}
			if _, _, err := EnsureBucket(ctx, js, kvc); err != nil {
				t.Fatalf("%s back: %v", kvc.Bucket, err)
			}
		}
	}
}

func streamConfig(ctx context.Context, t *testing.T, js jetstream.JetStream, bucket string) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(ctx, "KV_"+bucket)
	if err != nil {
		t.Fatalf("the stream of bucket %s: %v", bucket, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("the stream of bucket %s: %v", bucket, err)
	}
	return info.Config
}

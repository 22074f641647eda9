package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// AdsChannel is the NOTIFY channel the ads trigger (migration 0002) writes ad ids to.
const AdsChannel = "ads_changed"

// Listen backoff bounds: quick first retry for a blip, capped so a long outage costs one
// connection attempt every few seconds.
const (
	listenBackoffMin = 200 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

// Listen subscribes to channel on a dedicated connection (LISTEN state belongs to one
// session, so a pooled connection would lose it) and calls fn with each notification's payload
// until ctx ends or db is closed; then it returns nil. A lost connection is re-established
// with backoff. After every successful (re)subscribe fn is called once with an empty payload:
// notifications sent while disconnected are lost, so the caller should resynchronise then.
// fn runs on Listen's goroutine; it should return quickly.
func (db *DB) Listen(ctx context.Context, channel string, fn func(payload string)) error {
	if channel == "" {
		return errors.New("listen: empty channel name")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-db.closed:
			cancel()
		case <-ctx.Done():
		}
	}()

	log := db.log().With(zap.String("channel", channel))
	backoff := listenBackoffMin
	down := false // log an outage once, not once per retry
	for ctx.Err() == nil {
		err := db.listenOnce(ctx, channel, fn, func() {
			if down {
				log.Info("postgres listener reconnected")
			}
			down = false
			backoff = listenBackoffMin
		})
		if ctx.Err() != nil {
			break
		}
		if !down {
			log.Warn("postgres listener disconnected; retrying", zap.Error(err))
			down = true
		} else {
			log.Debug("postgres listener retry failed", zap.Error(err))
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(backoff*2, listenBackoffMax)
	}
	return nil
}

// listenOnce runs one connection's life: connect, LISTEN, deliver until an error.
func (db *DB) listenOnce(ctx context.Context, channel string, fn func(string), subscribed func()) error {
	cctx, cancel := context.WithTimeout(ctx, PingTimeout)
	conn, err := pgx.ConnectConfig(cctx, db.pool.Config().ConnConfig)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	subscribed()
	fn("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}

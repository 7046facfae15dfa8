package server

import (
	"context"
	"io"
	"log/slog"
	"time"
)

// Levels of the Python logging module, by the names LOG_LEVEL uses.
var levels = map[string]slog.Level{
	"DEBUG": slog.LevelDebug, "INFO": slog.LevelInfo, "WARNING": slog.LevelWarn, "ERROR": slog.LevelError,
}

// NewLogger writes one JSON object per line (LOG_FORMAT=json) with the keys of
// acme_common.logs: time (`2024-05-01T12:00:00.123+00:00`, UTC), level (Python's names),
// logger, message, then the line's own fields; or slog's text lines (LOG_FORMAT=text).
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	options := &slog.HandlerOptions{Level: levels[level], ReplaceAttr: pythonKeys}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: levels[level]}))
	}
	return slog.New(slog.NewJSONHandler(w, options))
}

func pythonKeys(groups []string, attr slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return attr
	}
	switch attr.Key {
	case slog.TimeKey:
		return slog.String("time", attr.Value.Time().UTC().Format("2006-01-02T15:04:05.000+00:00"))
	case slog.LevelKey:
		name := "DEBUG"
		switch level := attr.Value.Any().(slog.Level); {
		case level >= slog.LevelError:
			name = "ERROR"
		case level >= slog.LevelWarn:
			name = "WARNING"
		case level >= slog.LevelInfo:
			name = "INFO"
		}
		return slog.String("level", name)
	case slog.MessageKey:
		return slog.String("message", attr.Value.String())
	}
	return attr
}

// named is logger with its Python logger name (acme.access, acme.server, ...) as the
// `logger` field, which JSON puts right after the message.
func named(logger *slog.Logger, name string) *slog.Logger {
	return logger.With("logger", name)
}

// logAt logs at level unless the logger drops it (no formatting cost for dropped lines).
func logAt(ctx context.Context, logger *slog.Logger, level slog.Level, message string, attrs ...slog.Attr) {
	if logger.Enabled(ctx, level) {
		logger.LogAttrs(ctx, level, message, attrs...)
	}
}

func seconds(d time.Duration) float64 { return d.Seconds() }

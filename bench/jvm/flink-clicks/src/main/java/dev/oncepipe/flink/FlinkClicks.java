package dev.oncepipe.flink;

import java.sql.PreparedStatement;
import java.sql.SQLException;
import java.sql.Types;
import java.time.Duration;
import java.time.Instant;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.jdbc.JdbcExactlyOnceOptions;
import org.apache.flink.connector.jdbc.JdbcExecutionOptions;
import org.apache.flink.connector.jdbc.core.datastream.sink.JdbcSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import javax.sql.XADataSource;
import org.apache.flink.util.function.SerializableSupplier;
import org.postgresql.xa.PGXADataSource;

/**
 * The exactly-once Flink peer of oncepipe's click consumer, in a local MiniCluster (one JVM).
 *
 * <p>KafkaSource ({@code read_committed}) on the click topic, decoded with the shared Avro
 * single-object decoder, keyed by event_id and deduplicated in keyed state with a TTL, then ONE
 * statement per event (raw row, per-item and per-user-item counter upserts) through the JDBC sink
 * in exactly-once mode: one XA transaction per checkpoint, prepared at the checkpoint's barrier;
 * connector 4.0.0-2.0 commits it in the writer's own snapshot, before the checkpoint completes
 * (bench/README.md, "What the kill showed"). The sink runs at parallelism 1: the counter rows are shared, and
 * two XA transactions holding the same rows until a checkpoint would wait on each other.
 *
 * <p>Arguments ({@code --name value}): bootstrap, topic, group (Kafka group and the rows'
 * consumer_group), pg-host, pg-port, pg-database, pg-user, pg-password, schemas-dir,
 * checkpoint-dir, checkpoint-ms (1000), parallelism (1), ttl-hours (24), batch-size (500),
 * restore (a retained checkpoint's folder to start from, optional), write ({@code xa}: the
 * effects as they come, exactly once only through the sink's XA; {@code xa-if-new}: the effects
 * only of events whose raw row is new, see {@link #APPLY_IF_NEW}).
 */
public final class FlinkClicks {

    static final String APPLY = """
            WITH raw AS (
                INSERT INTO public.flink_click_events (consumer_group, event_id, user_id, item_id,
                    action, occurred_at, session_id, surface, context, topic, partition, "offset")
                VALUES (?, ?::uuid, ?, ?, ?, ?, ?, ?, ?::jsonb, ?, ?, ?)
            ), items AS (
                INSERT INTO public.flink_item_click_counts AS c (consumer_group, item_id, action, count)
                VALUES (?, ?, ?, 1)
                ON CONFLICT (consumer_group, item_id, action) DO UPDATE SET count = c.count + 1
            )
            INSERT INTO public.flink_user_item_click_counts AS u (consumer_group, user_id, item_id, count)
            VALUES (?, ?, ?, 1)
            ON CONFLICT (consumer_group, user_id, item_id) DO UPDATE SET count = u.count + 1
            """;

    /**
     * The same effects written only for events whose raw row is new: a write the database itself
     * makes idempotent. Needed because the JDBC sink 4.0.0-2.0's writer commits the transaction
     * of checkpoint N while snapshotting N (before N completes): after a crash there, the replay
     * from checkpoint N-1 writes those events again (see bench/README.md, the Flink peer).
     */
    static final String APPLY_IF_NEW = """
            WITH raw AS (
                INSERT INTO public.flink_click_events (consumer_group, event_id, user_id, item_id,
                    action, occurred_at, session_id, surface, context, topic, partition, "offset")
                VALUES (?, ?::uuid, ?, ?, ?, ?, ?, ?, ?::jsonb, ?, ?, ?)
                ON CONFLICT (consumer_group, event_id) DO NOTHING
                RETURNING consumer_group, user_id, item_id, action
            ), items AS (
                INSERT INTO public.flink_item_click_counts AS c (consumer_group, item_id, action, count)
                SELECT consumer_group, item_id, action, 1 FROM raw
                ON CONFLICT (consumer_group, item_id, action) DO UPDATE SET count = c.count + 1
            )
            INSERT INTO public.flink_user_item_click_counts AS u (consumer_group, user_id, item_id, count)
            SELECT consumer_group, user_id, item_id, 1 FROM raw
            ON CONFLICT (consumer_group, user_id, item_id) DO UPDATE SET count = u.count + 1
            """;

    private FlinkClicks() {
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> args = parse(argv);
        String group = need(args, "group");
        Configuration conf = new Configuration();
        conf.setString("execution.checkpointing.interval", args.getOrDefault("checkpoint-ms", "1000") + " ms");
        conf.setString("execution.checkpointing.mode", "EXACTLY_ONCE");
        conf.setString("execution.checkpointing.storage", "filesystem");
        conf.setString("execution.checkpointing.dir", "file://" + need(args, "checkpoint-dir"));
        conf.setString("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION");
        conf.setString("execution.checkpointing.num-retained", "2");
        conf.setString("state.backend.type", "hashmap");
        // A failure ends the JVM (the benchmark restarts it from the last checkpoint, as a deployment would).
        conf.setString("restart-strategy.type", "none");
        if (args.containsKey("restore")) {
            conf.setString("execution.state-recovery.path", "file://" + args.get("restore"));
        }
        int parallelism = Integer.parseInt(args.getOrDefault("parallelism", "1"));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(parallelism, conf);

        KafkaSource<Click> source = KafkaSource.<Click>builder()
                .setBootstrapServers(need(args, "bootstrap"))
                .setTopics(need(args, "topic"))
                .setGroupId(group)
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setProperty("isolation.level", "read_committed")
                .setProperty("commit.offsets.on.checkpoint", "true")
                .setDeserializer(new ClickDeserializer(need(args, "schemas-dir")))
                .build();

        String pgHost = need(args, "pg-host");
        int pgPort = Integer.parseInt(need(args, "pg-port"));
        String pgDatabase = need(args, "pg-database");
        String pgUser = need(args, "pg-user");
        String pgPassword = args.getOrDefault("pg-password", "");
        // The data source is not serializable: the sink gets a supplier of strings that builds it.
        SerializableSupplier<XADataSource> xa = () -> {
            PGXADataSource pg = new PGXADataSource();
            pg.setServerNames(new String[] {pgHost});
            pg.setPortNumbers(new int[] {pgPort});
            pg.setDatabaseName(pgDatabase);
            pg.setUser(pgUser);
            pg.setPassword(pgPassword);
            pg.setApplicationName("flink-clicks");
            return pg;
        };

        String write = args.getOrDefault("write", "xa");
        if (!write.equals("xa") && !write.equals("xa-if-new")) {
            throw new IllegalArgumentException("--write is xa or xa-if-new, not '" + write + "'");
        }
        boolean ifNew = write.equals("xa-if-new");
        JdbcSink<Click> sink = JdbcSink.<Click>builder()
                .withQueryStatement(ifNew ? APPLY_IF_NEW : APPLY,
                        (PreparedStatement st, Click c) -> bind(st, c, group, ifNew))
                .withExecutionOptions(JdbcExecutionOptions.builder()
                        .withBatchSize(Integer.parseInt(args.getOrDefault("batch-size", "500")))
                        .withBatchIntervalMs(0)
                        .withMaxRetries(0) // required in exactly-once mode: a retry could repeat a write
                        .build())
                .buildExactlyOnce(JdbcExactlyOnceOptions.builder()
                        .withTransactionPerConnection(true) // PostgreSQL: one XA transaction per connection
                        .withTimeoutSec(Optional.empty())
                        .build(), xa);

        Duration ttl = Duration.ofHours(Long.parseLong(args.getOrDefault("ttl-hours", "24")));
        env.fromSource(source, WatermarkStrategy.noWatermarks(), "clicks")
                .uid("clicks-source")
                .keyBy(c -> c.eventId)
                .process(new FirstSeen(ttl))
                .uid("first-seen")
                .name("dedupe by event_id")
                .sinkTo(sink)
                .uid("jdbc-xa-sink")
                .setParallelism(1);
        env.execute("oncepipe-flink-clicks " + group);
    }

    static void bind(PreparedStatement st, Click c, String group, boolean ifNew) throws SQLException {
        st.setString(1, group);
        st.setString(2, c.eventId);
        st.setString(3, c.userId);
        st.setString(4, c.itemId);
        st.setString(5, c.action);
        st.setObject(6, OffsetDateTime.ofInstant(Instant.ofEpochMilli(c.occurredAtMillis), ZoneOffset.UTC));
        st.setString(7, c.sessionId);
        st.setString(8, c.surface);
        if (c.contextJson == null) {
            st.setNull(9, Types.VARCHAR);
        }
        else {
            st.setString(9, c.contextJson);
        }
        st.setString(10, c.topic);
        st.setInt(11, c.partition);
        st.setLong(12, c.offset);
        if (ifNew) {
            return;
        }
        st.setString(13, group);
        st.setString(14, c.itemId);
        st.setString(15, c.action);
        st.setString(16, group);
        st.setString(17, c.userId);
        st.setString(18, c.itemId);
    }

    private static Map<String, String> parse(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i < argv.length; i += 2) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("arguments are --name value pairs; got '" + argv[i] + "'");
            }
            args.put(argv[i].substring(2), argv[i + 1]);
        }
        return args;
    }

    private static String need(Map<String, String> args, String name) {
        String value = args.get(name);
        if (value == null) {
            throw new IllegalArgumentException("--" + name + " is required (see FlinkClicks' javadoc)");
        }
        return value;
    }
}

package dev.oncepipe.avro.connect;

import dev.oncepipe.avro.SchemaCatalog;
import dev.oncepipe.avro.SingleObjectDecoder;
import dev.oncepipe.avro.SingleObjectException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.common.config.AbstractConfig;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.config.ConfigException;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.errors.DataException;
import org.apache.kafka.connect.storage.Converter;

/**
 * A Kafka Connect {@link Converter} reading oncepipe's Avro single-object encoded values into a
 * Connect {@code Struct} and its schema (one schema per event type: every version is read into the
 * newest). Read only: sinks use it; producing goes through oncepipe.
 *
 * <p>Settings (prefixed {@code value.converter.} in a connector's config):
 * <ul>
 *   <li>{@code schemas.dir}: the folder of writer schemas, every {@code <type>.v<N>.avsc} version
 *       (oncepipe's {@code schemas/avro});</li>
 *   <li>{@code map.format}: {@code map} (a Connect map, the default) or {@code json} (a JSON object
 *       text, for sinks with no map type, e.g. a {@code jsonb} column through the Debezium JDBC sink).</li>
 * </ul>
 *
 * <p>A value that is not such an encoding, or whose writer schema is not in the folder, raises a
 * {@link DataException} naming the topic and what to do: with Connect's default
 * {@code errors.tolerance=none} the task stops there, and nothing after it is written.
 */
public final class AvroSingleObjectConverter implements Converter {

    /** The folder of writer schemas (every version). */
    public static final String SCHEMAS_DIR = "schemas.dir";
    /** {@code map} or {@code json}. */
    public static final String MAP_FORMAT = "map.format";

    private static final ConfigDef CONFIG = new ConfigDef()
            .define(SCHEMAS_DIR, ConfigDef.Type.STRING, ConfigDef.NO_DEFAULT_VALUE, ConfigDef.Importance.HIGH,
                    "Folder of Avro writer schemas, every <type>.v<N>.avsc version (oncepipe's schemas/avro).")
            .define(MAP_FORMAT, ConfigDef.Type.STRING, "map", ConfigDef.ValidString.in("map", "json"),
                    ConfigDef.Importance.LOW, "Avro maps as Connect maps (map) or as JSON object text (json).");

    private SingleObjectDecoder decoder;
    private ConnectData connect;

    @Override
    public ConfigDef config() {
        return CONFIG;
    }

    @Override
    public void configure(Map<String, ?> configs, boolean isKey) {
        AbstractConfig config = new AbstractConfig(CONFIG, configs);
        try {
            decoder = new SingleObjectDecoder(SchemaCatalog.load(Path.of(config.getString(SCHEMAS_DIR))));
        }
        catch (IllegalArgumentException e) {
            throw new ConfigException(SCHEMAS_DIR, config.getString(SCHEMAS_DIR), e.getMessage());
        }
        connect = new ConnectData(ConnectData.MapFormat.valueOf(config.getString(MAP_FORMAT).toUpperCase(Locale.ROOT)));
    }

    @Override
    public SchemaAndValue toConnectData(String topic, byte[] value) {
        if (value == null) {
            return SchemaAndValue.NULL;
        }
        if (decoder == null) {
            throw new DataException("AvroSingleObjectConverter is not configured: set " + SCHEMAS_DIR);
        }
        try {
            GenericRecord record = decoder.decode(value);
            return new SchemaAndValue(connect.schemaOf(record.getSchema()), connect.valueOf(record));
        }
        catch (SingleObjectException e) {
            throw new DataException("topic " + topic + ": " + e.getMessage(), e);
        }
    }

    @Override
    public byte[] fromConnectData(String topic, Schema schema, Object value) {
        throw new DataException("AvroSingleObjectConverter only reads (topic " + topic
                + "): write oncepipe events with oncepipe's producer or outbox");
    }
}

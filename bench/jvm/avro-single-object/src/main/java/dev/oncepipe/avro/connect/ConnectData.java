package dev.oncepipe.avro.connect;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.LogicalType;
import org.apache.avro.LogicalTypes;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericFixed;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.connect.data.Date;
import org.apache.kafka.connect.data.Schema;
import org.apache.kafka.connect.data.SchemaBuilder;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.data.Time;
import org.apache.kafka.connect.data.Timestamp;
import org.apache.kafka.connect.errors.DataException;

/**
 * Avro schemas and values as Connect schemas and values.
 *
 * <p>Strings, {@code uuid} strings and enum symbols become Connect strings; {@code
 * timestamp-millis}, {@code date} and {@code time-millis} become Connect's Timestamp, Date and Time;
 * a union of {@code null} and one type becomes that type, optional. Maps become Connect maps, or,
 * with {@link MapFormat#JSON}, a JSON object text (for sinks that have no map type, such as a
 * PostgreSQL {@code jsonb} column through the Debezium JDBC sink). Other unions are refused when
 * the schema is converted, with the field named.
 */
final class ConnectData {

    /** How an Avro map is given to Connect. */
    enum MapFormat {
        /** A Connect map of strings to values. */
        MAP,
        /** A string holding the map as a JSON object. */
        JSON
    }

    private static final long MILLIS_PER_DAY = 86_400_000L;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final MapFormat mapFormat;
    private final Map<org.apache.avro.Schema, Schema> schemas = new IdentityHashMap<>();

    ConnectData(MapFormat mapFormat) {
        this.mapFormat = mapFormat;
    }

    /** The Connect schema of a record schema (cached: the decoder reuses its reader schemas). */
    Schema schemaOf(org.apache.avro.Schema record) {
        return schemas.computeIfAbsent(record, r -> convert(r, false, r.getFullName()).build());
    }

    /** The Connect value of {@code record}, whose Connect schema is {@link #schemaOf}. */
    Struct valueOf(GenericRecord record) {
        return (Struct) value(schemaOf(record.getSchema()), record.getSchema(), record);
    }

    private SchemaBuilder convert(org.apache.avro.Schema avro, boolean optional, String where) {
        SchemaBuilder builder = switch (avro.getType()) {
            case RECORD -> {
                SchemaBuilder struct = SchemaBuilder.struct().name(avro.getFullName());
                for (org.apache.avro.Schema.Field field : avro.getFields()) {
                    struct.field(field.name(), convert(field.schema(), false, where + "." + field.name()).build());
                }
                yield struct;
            }
            case UNION -> {
                List<org.apache.avro.Schema> types = avro.getTypes();
                List<org.apache.avro.Schema> present = new ArrayList<>();
                for (org.apache.avro.Schema type : types) {
                    if (type.getType() != org.apache.avro.Schema.Type.NULL) {
                        present.add(type);
                    }
                }
                if (present.size() != 1 || types.size() != 2) {
                    throw new DataException(where + ": union " + avro + " has no Connect type; only [\"null\", T] unions"
                            + " are converted");
                }
                yield convert(present.get(0), true, where);
            }
            case STRING, ENUM -> SchemaBuilder.string();
            case INT -> {
                LogicalType logical = avro.getLogicalType();
                if (logical instanceof LogicalTypes.Date) {
                    yield Date.builder();
                }
                yield logical instanceof LogicalTypes.TimeMillis ? Time.builder() : SchemaBuilder.int32();
            }
            case LONG -> avro.getLogicalType() instanceof LogicalTypes.TimestampMillis
                    ? Timestamp.builder() : SchemaBuilder.int64();
            case FLOAT -> SchemaBuilder.float32();
            case DOUBLE -> SchemaBuilder.float64();
            case BOOLEAN -> SchemaBuilder.bool();
            case BYTES, FIXED -> SchemaBuilder.bytes();
            case ARRAY -> SchemaBuilder.array(convert(avro.getElementType(), false, where + "[]").build());
            case MAP -> mapFormat == MapFormat.JSON
                    ? SchemaBuilder.string()
                    : SchemaBuilder.map(Schema.STRING_SCHEMA, convert(avro.getValueType(), false, where + "{}").build());
            case NULL -> throw new DataException(where + ": a null-only type has no Connect type");
        };
        return optional ? builder.optional() : builder;
    }

    private Object value(Schema schema, org.apache.avro.Schema avro, Object value) {
        if (value == null) {
            return null;
        }
        switch (avro.getType()) {
            case UNION:
                return value(schema, avro.getTypes().get(GenericData.get().resolveUnion(avro, value)), value);
            case RECORD:
                GenericRecord record = (GenericRecord) value;
                Struct struct = new Struct(schema);
                for (org.apache.avro.Schema.Field field : avro.getFields()) {
                    struct.put(field.name(), value(schema.field(field.name()).schema(), field.schema(), record.get(field.pos())));
                }
                return struct;
            case STRING:
            case ENUM:
                return value.toString();
            case INT:
                if (avro.getLogicalType() instanceof LogicalTypes.Date) {
                    return new java.util.Date((Integer) value * MILLIS_PER_DAY);
                }
                return avro.getLogicalType() instanceof LogicalTypes.TimeMillis ? new java.util.Date((Integer) value) : value;
            case LONG:
                return avro.getLogicalType() instanceof LogicalTypes.TimestampMillis ? new java.util.Date((Long) value) : value;
            case BYTES:
                return bytes((ByteBuffer) value);
            case FIXED:
                return ((GenericFixed) value).bytes().clone();
            case ARRAY:
                List<Object> items = new ArrayList<>();
                for (Object item : (Iterable<?>) value) {
                    items.add(value(schema.valueSchema(), avro.getElementType(), item));
                }
                return items;
            case MAP:
                if (mapFormat == MapFormat.JSON) {
                    return json(avro, value);
                }
                Map<String, Object> map = new LinkedHashMap<>();
                for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
                    map.put(entry.getKey().toString(), value(schema.valueSchema(), avro.getValueType(), entry.getValue()));
                }
                return map;
            default:
                return value;
        }
    }

    private static byte[] bytes(ByteBuffer buffer) {
        byte[] copy = new byte[buffer.remaining()];
        buffer.duplicate().get(copy);
        return copy;
    }

    private static String json(org.apache.avro.Schema avro, Object value) {
        try {
            return JSON.writeValueAsString(plain(avro, value));
        }
        catch (JsonProcessingException e) {
            throw new DataException("cannot write a map as JSON: " + e.getMessage(), e);
        }
    }

    /** Plain Java (strings, numbers, lists, maps) for JSON. */
    private static Object plain(org.apache.avro.Schema avro, Object value) {
        if (value == null) {
            return null;
        }
        switch (avro.getType()) {
            case UNION:
                return plain(avro.getTypes().get(GenericData.get().resolveUnion(avro, value)), value);
            case RECORD:
                GenericRecord record = (GenericRecord) value;
                Map<String, Object> fields = new LinkedHashMap<>();
                for (org.apache.avro.Schema.Field field : avro.getFields()) {
                    fields.put(field.name(), plain(field.schema(), record.get(field.pos())));
                }
                return fields;
            case MAP:
                Map<String, Object> map = new LinkedHashMap<>();
                for (Map.Entry<?, ?> entry : ((Map<?, ?>) value).entrySet()) {
                    map.put(entry.getKey().toString(), plain(avro.getValueType(), entry.getValue()));
                }
                return map;
            case ARRAY:
                List<Object> items = new ArrayList<>();
                for (Object item : (Iterable<?>) value) {
                    items.add(plain(avro.getElementType(), item));
                }
                return items;
            case BYTES:
                return bytes((ByteBuffer) value);
            case FIXED:
                return ((GenericFixed) value).bytes();
            case STRING:
            case ENUM:
                return value.toString();
            default:
                return value;
        }
    }
}

package dev.oncepipe.avro.connect;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.kafka.connect.data.Field;
import org.apache.kafka.connect.data.SchemaAndValue;
import org.apache.kafka.connect.data.Struct;
import org.apache.kafka.connect.errors.DataException;

/**
 * {@code java ... dev.oncepipe.avro.connect.DecodeMain <schemas.dir> [map|json]}: one hex-encoded
 * value per line of standard input, through {@link AvroSingleObjectConverter}; prints one JSON line
 * per value, the Connect struct as an object (timestamps as epoch milliseconds), or
 * {@code {"error": "..."}} for a refused value. A check that the JVM reads what oncepipe writes.
 */
public final class DecodeMain {

    private static final ObjectMapper JSON = new ObjectMapper();

    private DecodeMain() {
    }

    /** Decode standard input's values; exit 2 on bad arguments. */
    public static void main(String[] args) throws IOException {
        if (args.length < 1 || args.length > 2) {
            System.err.println("usage: DecodeMain <schemas.dir> [map|json]");
            System.exit(2);
        }
        AvroSingleObjectConverter converter = new AvroSingleObjectConverter();
        converter.configure(Map.of(AvroSingleObjectConverter.SCHEMAS_DIR, args[0],
                AvroSingleObjectConverter.MAP_FORMAT, args.length > 1 ? args[1] : "map"), false);
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            if (line.isBlank()) {
                continue;
            }
            Object shown;
            try {
                SchemaAndValue decoded = converter.toConnectData("stdin", HexFormat.of().parseHex(line.strip()));
                shown = plain(decoded.value());
            }
            catch (DataException | IllegalArgumentException e) {
                shown = Map.of("error", String.valueOf(e.getMessage()));
            }
            out.println(JSON.writeValueAsString(shown));
        }
    }

    private static Object plain(Object value) {
        if (value instanceof Struct struct) {
            Map<String, Object> fields = new LinkedHashMap<>();
            for (Field field : struct.schema().fields()) {
                fields.put(field.name(), plain(struct.get(field)));
            }
            return fields;
        }
        if (value instanceof java.util.Date date) {
            return date.getTime();
        }
        if (value instanceof List<?> items) {
            List<Object> copy = new ArrayList<>();
            items.forEach(item -> copy.add(plain(item)));
            return copy;
        }
        if (value instanceof Map<?, ?> map) {
            Map<String, Object> copy = new LinkedHashMap<>();
            map.forEach((k, v) -> copy.put(String.valueOf(k), plain(v)));
            return copy;
        }
        return value;
    }
}

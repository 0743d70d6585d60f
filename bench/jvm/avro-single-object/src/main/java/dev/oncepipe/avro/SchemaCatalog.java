package dev.oncepipe.avro;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;

/**
 * oncepipe's writer schemas: every {@code <snake_name>.v<N>.avsc} file of a folder, by fingerprint.
 *
 * <p>Every version ever published stays in the folder, because events written with it may still
 * sit in a topic. The highest {@code N} of a record's full name is its newest version: the one
 * events of every version of that type are read into (Avro schema resolution), so a consumer sees
 * one shape per type whatever version wrote the event.
 */
public final class SchemaCatalog {

    private static final Pattern FILE_NAME = Pattern.compile("^([a-z][a-z0-9_]*)\\.v([1-9][0-9]*)\\.avsc$");

    private final Path source;
    private final Map<Long, Schema> byFingerprint;
    private final Map<String, Schema> newestByName;

    private SchemaCatalog(Path source, Map<Long, Schema> byFingerprint, Map<String, Schema> newestByName) {
        this.source = source;
        this.byFingerprint = Collections.unmodifiableMap(byFingerprint);
        this.newestByName = Collections.unmodifiableMap(newestByName);
    }

    /** Load every {@code *.v<N>.avsc} file of {@code folder}; other files are ignored. */
    public static SchemaCatalog load(Path folder) {
        if (!Files.isDirectory(folder)) {
            throw new IllegalArgumentException("schema folder " + folder + " does not exist: point it at oncepipe's"
                    + " schemas/avro (every <type>.v<N>.avsc version)");
        }
        Map<String, TreeMap<Integer, Schema>> versions = new TreeMap<>();
        Map<Long, Schema> byFingerprint = new HashMap<>();
        try (DirectoryStream<Path> files = Files.newDirectoryStream(folder, "*.avsc")) {
            for (Path file : files) {
                Matcher name = FILE_NAME.matcher(file.getFileName().toString());
                if (!name.matches()) {
                    continue;
                }
                Schema schema = parse(file);
                versions.computeIfAbsent(schema.getFullName(), k -> new TreeMap<>())
                        .put(Integer.parseInt(name.group(2)), schema);
                byFingerprint.put(SchemaNormalization.parsingFingerprint64(schema), schema);
            }
        }
        catch (IOException e) {
            throw new IllegalArgumentException("cannot read schema folder " + folder + ": " + e.getMessage(), e);
        }
        if (byFingerprint.isEmpty()) {
            throw new IllegalArgumentException("no <type>.v<N>.avsc file in " + folder
                    + ": point the converter at oncepipe's schemas/avro");
        }
        Map<String, Schema> newest = new HashMap<>();
        versions.forEach((fullName, byVersion) -> newest.put(fullName, byVersion.lastEntry().getValue()));
        return new SchemaCatalog(folder, byFingerprint, newest);
    }

    private static Schema parse(Path file) throws IOException {
        try {
            // One parser per file: every version defines the same named types again.
            return new Schema.Parser().parse(file.toFile());
        }
        catch (RuntimeException e) {
            throw new IllegalArgumentException(file + " is not a valid Avro schema: " + e.getMessage(), e);
        }
    }

    /** The folder the schemas came from (for messages). */
    public Path source() {
        return source;
    }

    /** The writer schema of a fingerprint, or null. */
    public Schema writer(long fingerprint) {
        return byFingerprint.get(fingerprint);
    }

    /** Every writer schema of the record {@code fullName}, oldest first is not guaranteed. */
    public List<Schema> versionsOf(String fullName) {
        List<Schema> found = new ArrayList<>();
        for (Schema schema : byFingerprint.values()) {
            if (schema.getFullName().equals(fullName)) {
                found.add(schema);
            }
        }
        return found;
    }

    /** The newest version of the record {@code fullName}: what its events are read into. */
    public Schema newest(String fullName) {
        return newestByName.get(fullName);
    }

    /** How many writer schemas the catalog holds. */
    public int size() {
        return byFingerprint.size();
    }
}

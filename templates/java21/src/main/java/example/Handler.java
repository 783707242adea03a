package example;

import java.util.Map;

/**
 * The {{name}} function. The Java runtime calls handleRequest with the event
 * deserialised into a Map; add com.amazonaws:aws-lambda-java-core to lib/ to
 * take a Context as a second parameter.
 */
public class Handler {
    public Map<String, Object> handleRequest(Map<String, Object> event) {
        Object name = event == null ? null : event.get("name");
        return Map.of("statusCode", 200, "body", "hello, " + (name == null ? "world" : name));
    }
}

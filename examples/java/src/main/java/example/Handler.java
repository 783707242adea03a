package example;

import greeter.Greeter;
import java.util.Map;

/** The Java runtime calls handleRequest with the event as a Map. */
public class Handler {
    public Map<String, Object> handleRequest(Map<String, Object> event) {
        Object name = event == null ? null : event.get("name");
        return Map.of("statusCode", 200, "body", Greeter.greet(name));
    }
}

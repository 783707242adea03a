package greeter;

/** A tiny library, packed as a jar to show where Lambda expects jars. */
public final class Greeter {
    private Greeter() {}

    public static String greet(Object name) {
        return "hello, " + (name == null ? "world" : name);
    }
}

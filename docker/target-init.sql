-- The dropship target user (README "Privileges").
CREATE USER 'dropship'@'%' IDENTIFIED BY 'dropship-pass';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, TRIGGER ON *.* TO 'dropship'@'%';

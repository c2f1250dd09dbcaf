# Capistrano tasks: a snapback snapshot before every deploy, and rollback through snapback so
# the database can come back with the code.
#   in config/deploy.rb:  load "lib/capistrano/tasks/snapback.rake" (this file)
#   set :snapback_config, "/etc/snapback/shop.json"
namespace :snapback do
  desc "Snapshot the live release and databases before deploying"
  task :snapshot do
    on roles(:db), primary: true do
      execute :snapback, "--config", fetch(:snapback_config), "snapshot", "--tag", "pre-deploy"
    end
  end

  desc "Roll back code and database to the previous release"
  task :rollback do
    on roles(:app) do
      execute :snapback, "--config", fetch(:snapback_config), "rollback", "--to", "previous",
              "--with-database"
    end
  end
end

before "deploy:starting", "snapback:snapshot"
